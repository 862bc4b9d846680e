"""`machikit bench ingest` at a tiny scale on the real services: the tool's
correctness (report structure, every message stored once, nothing left
behind), not the machine's speed — no timing assertions."""

import json
from pathlib import Path

import psycopg
import pytest

from collector.bench import run_plan
from collector.bench.bed import DB_PREFIX
from collector.bench.measure import commit_latency
from collector.bench.plan import plan_from_args
from collector.bench.profile import summarize
from collector.bench.report import render
from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from machikit.cli import build_parser


def bench_databases(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                            (DB_PREFIX + "%",)).fetchall()
    return {name for (name,) in rows}


def session_kept(mqtt_url: str, client_id: str) -> bool:
    """Resume (clean_start=False): CONNACK's session_present says if the broker
    still had it. Its expiry is 0, so the check itself ends any session found."""
    target = parse_mqtt_url(mqtt_url)
    client = make_client(target, client_id, "5")
    present: list[bool] = []
    client.on_connect = lambda c, u, flags, reason, p: present.append(flags.session_present)
    client.connect(target.host, target.port, clean_start=False)
    while not present:
        client.loop(0.1)
    client.disconnect()
    return present[0]


@pytest.fixture(scope="module")
def report(database_url: str, mqtt_url: str) -> dict:
    argv = ["bench", "ingest", "--loads", "300,max", "--seconds", "2", "--workers", "1,2",
            "--backlog", "2000", "--naive-backlog", "300", "--fleet", "20",
            "--database-url", database_url, "--mqtt-url", mqtt_url]
    before = bench_databases(database_url)
    found = run_plan(plan_from_args(build_parser("bench").parse_args(argv)))
    assert bench_databases(database_url) == before, "scratch databases must be dropped"
    return found


@pytest.mark.slow
@pytest.mark.services
def test_every_message_is_stored_exactly_once(report: dict) -> None:
    runs = report["loads"] + report["drains"]
    assert [r["check"]["exactly_once"] for r in runs] == [True] * 4
    load = report["loads"][0]
    assert load["check"]["rows"] == load["publish"]["acked"] == load["publish"]["sent"] > 0
    for drain in report["drains"]:
        assert drain["check"]["rows"] == drain["backlog"]


@pytest.mark.slow
@pytest.mark.services
def test_report_has_every_part(report: dict) -> None:
    load = report["loads"][0]
    assert load["target_rate"] == 300
    assert set(load["cpu_percent"]) == {"collector", "mosquitto", "postgres", "publishers"}
    assert {"p50", "p99", "p99_typical", "source"} <= set(load["latency"]["commit"])
    assert load["per_second"] and {"rate", "p99"} <= set(load["per_second"][0])
    assert {"p50", "p99"} <= set(load["latency"]["receive"])
    kinds = [(d["consumer"], d["workers"]) for d in report["drains"]]
    assert kinds == [("collector", 1), ("collector", 2), ("naive", 1)]
    two = report["drains"][1]
    assert sum(w["stored"] for w in two["per_worker"]) == 2000  # the shared split
    assert report["naive_ratio"] > 0
    assert [t["target"] for t in report["targets"]] == [
        "1 collector ≥ 15k msg/s", "2 workers ≥ 30k msg/s", "p99 publish→commit ≤ 10 ms @ 5k msg/s"]
    assert json.loads(json.dumps(report)) == report  # what --json writes
    text = render(report)
    assert "stored/s" in text and "naive" in text


@pytest.mark.slow
@pytest.mark.services
def test_no_session_is_left_behind(report: dict, mqtt_url: str) -> None:
    workers = [w["client_id"] for d in report["drains"] for w in d.get("per_worker", [])]
    assert len(workers) == 3
    for client_id in workers:
        assert not session_kept(mqtt_url, client_id), client_id


def test_profile_summary_splits_threads_and_drops_timed_waits(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "thread (1): MainThread;run_collect (collector/ingest.py:9);"
        "Collector._store (collector/ingest.py:1);Connection.wait (psycopg/connection.py:3) 30\n"
        "thread (2): paho-mqtt-client-w1;Client._loop (paho/mqtt/client.py:1);"
        "Properties.clear (paho/mqtt/properties.py:2) 10\n"
        "thread (3): stats;StatsReporter._run (collector/stats.py:1);"
        "Condition.wait (threading.py:331) 60\n")
    found = summarize(raw)
    assert found["samples"] == 40 and found["waiting_samples"] == 60
    assert found["threads"] == {"main thread (check, write, commit, ack)": 75.0,
                                "paho network thread (receive, PUBACK)": 25.0}
    assert found["self"]["Connection.wait (psycopg/connection.py)"] == 75.0
    main = found["by_thread"]["main thread (check, write, commit, ack)"]
    assert "run_collect (collector/ingest.py)" not in main  # the way in, not work


def test_commit_latency_from_per_second_stats() -> None:
    snaps = [{"time_ms": 1000 * t, "age_ms": {"p50": p50, "p99": p99, "max": p99, "count": n}}
             for t, p50, p99, n in ((1, 2, 5, 100), (2, 3, 40, 10), (3, 2, 6, 100))]
    found = commit_latency(snaps, since=0.5)
    assert (found["p50"], found["p99"], found["p99_typical"]) == (2, 40, 6)
    assert found["count"] == 210
