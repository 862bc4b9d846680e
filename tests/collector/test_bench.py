"""`machikit bench ingest|live|api` at a tiny scale on the real services: the tools'
correctness (report structure, every message stored once, nothing left
behind), not the machine's speed — no timing assertions."""

import asyncio
import contextlib
import itertools
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from collector.bench import run_plan
from collector.bench.bed import DB_PREFIX
from collector.bench.hist import Histogram
from collector.bench.listeners import Crowd
from collector.bench.loadgen import LoadJob, run_load
from collector.bench.measure import commit_latency
from collector.bench.plan import plan_from_args
from collector.bench.profile import summarize
from collector.bench.report import render
from collector.bench.sse import EventStream
from collector.bench.stack import free_port
from collector.bench.webplan import web_plan_from_args
from collector.bench.webreport import render_api, render_live
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


# --- bench live / bench api: the clients against a throwaway server ----------------

class FakeApi:
    """A tiny HTTP server in a thread: `…/live` streams a snapshot then an update
    every 0.1 s (chunked, CRLF lines, one event split over two chunks, pings);
    anything else is a JSON body with an ETag, or 304 when it matches."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(started,), daemon=True)
        self.thread.start()
        started.wait(5)

    def _main(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @staticmethod
    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def event(self, name: str, data: dict) -> bytes:
        return b"event: %s\r\ndata: %s\r\n\r\n" % (name.encode(), json.dumps(data).encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"/live " in head:
                    await self._stream(writer)
                elif b'if-none-match: "v1"' in head.lower():
                    writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
                else:
                    body = b'{"type": "FeatureCollection", "features": []}'
                    writer.write(b'HTTP/1.1 200 OK\r\nETag: "v1"\r\nContent-Length: %d\r\n\r\n%s'
                                 % (len(body), body))
        writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + self.chunk(b"retry: 3000\r\n\r\n"))
        snapshot = {"now_ms": 1, "vehicles": {"type": "FeatureCollection", "features": []}}
        writer.write(self.chunk(self.event("snapshot", snapshot)))
        for i in itertools.count():
            await asyncio.sleep(0.1)
            now = int(time.time() * 1000)
            vehicle = {"type": "Feature", "id": "bus-01", "properties": {"id": "bus-01",
                                                                          "t": now - 30}}
            update = self.event("update", {"now_ms": now - 10, "vehicles": [vehicle],
                                           "sensors": [], "removed": []})
            writer.write(self.chunk(update[:7]) + self.chunk(update[7:]))  # split mid-line
            if i % 3 == 0:
                writer.write(self.chunk(b": ping\n\n"))
            await writer.drain()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    yield api
    api.close()


def test_event_stream_handles_any_line_ending_split_anywhere() -> None:
    text = (b'retry: 3000\r\n\r\nevent: snapshot\r\ndata: {"a": 1}\r\n\r\n'
            b": ping\n\nevent: update\rdata: 2\r\r")
    for cut in range(len(text)):
        stream = EventStream()
        found = stream.feed(text[:cut]) + stream.feed(text[cut:])
        assert found == [("snapshot", '{"a": 1}'), ("update", "2")], cut
        assert (stream.comments, stream.retry_ms) == (1, 3000)


def test_histogram_percentiles_and_merge() -> None:
    one, two = Histogram(), Histogram(0.5)
    for v in range(1, 101):
        one.add(v)
    two.add(0.74)
    assert one.summary()["p50"] == 50 and one.percentile(0.99) == 99 and len(one) == 100
    assert two.summary()["max"] == 0.5
    one.merge({100: 100})
    assert one.summary()["p50"] == 100 and one.summary()["min"] == 1


def test_crowd_measures_every_update(fake_api: FakeApi) -> None:
    crowd = Crowd("127.0.0.1", fake_api.port, "/api/v1/towns/x/live", 20, processes=2)
    try:
        ramp = crowd.start()
        time.sleep(1.0)
        seen = crowd.stop()
    finally:
        crowd.close()
    assert ramp["connected"] == 20 and ramp["failed"] == {}
    assert not seen["dropped"]
    delay, build = seen["delay"].summary(), seen["build"].summary()
    assert delay["count"] == sum(seen["per_client"]) >= 20 * 5
    assert build["p50"] == 20 and 30 <= delay["p50"] < 500  # t, now_ms and receive apart
    assert seen["counts"]["pings"] >= 20 and seen["counts"]["snapshots"] == 20
    assert len(seen["per_client"]) == 20


def test_crowd_counts_refused_connections() -> None:
    crowd = Crowd("127.0.0.1", free_port(), "/live", 3, processes=1)
    try:
        assert crowd.start()["failed"] == {"ConnectionRefusedError (Connection refused)": 3}
    finally:
        crowd.close()


def test_open_loop_load_with_and_without_etag(fake_api: FakeApi) -> None:
    found = []
    for conditional in (False, True):
        job = LoadJob("127.0.0.1", fake_api.port, "/api/v1/towns/x/vehicles", rate=100,
                      seconds=0.5, connections=2, conditional=conditional, warmup_s=0.1)
        results: queue.Queue = queue.Queue()
        run_load(job, results)
        assert results.get_nowait() == {"warmed_up": True}
        found.append(results.get_nowait())
    plain, conditional = found
    assert plain["statuses"] == {"200": 50} and plain["requests"] == 50
    assert conditional["statuses"] == {"304": 50} and conditional["bytes_per_response"] == 0
    assert plain["errors"] == {} and plain["latency_ms"]["count"] == 50
    assert plain["latency_ms"]["p50"] >= plain["service_ms"]["p50"] > 0


# --- bench live / bench api on the real services (tiny sizes, no timing) -----------

def _bench(argv: list[str]) -> dict:
    from collector.bench.web import run_live_sweep

    args = build_parser("bench").parse_args(argv)
    plan = web_plan_from_args(args)
    if args.what == "live":
        return {"runs": run_live_sweep(plan)}
    from collector.bench.apibench import run_api

    return {"api": run_api(plan)}


@pytest.mark.slow
@pytest.mark.services
def test_bench_live_smoke(database_url: str, mqtt_url: str) -> None:
    before = bench_databases(database_url)
    report = _bench(["bench", "live", "--clients", "20", "--seconds", "5", "--fleet", "5",
                     "--interval", "1", "--database-url", database_url, "--mqtt-url", mqtt_url])
    assert bench_databases(database_url) == before
    (run,) = report["runs"]
    assert run["connected"] == 20 and run["dropped"] == 0 and not run["failed"]
    assert run["publish"]["acked"] >= 20
    assert run["features"]["received"] == run["features"]["expected"] > 0
    assert run["delay_ms"]["count"] == run["features"]["received"]
    assert {"api", "collector", "mosquitto", "postgres", "clients"} <= set(run["cpu_percent"]) \
        or "serve" in run["cpu_percent"]
    assert run["api_memory"]["peak_rss_mb"] > 0
    report["environment"] = {"cpus": 2, "server": "x", "live_poll_s": 0.5, "fleet": 5,
                             "interval_s": 1, "nofile_soft_hard": [1, 2]}
    assert "20" in render_live(report)


@pytest.mark.slow
@pytest.mark.services
def test_bench_api_smoke(database_url: str, mqtt_url: str) -> None:
    report = _bench(["bench", "api", "--rate", "50", "--seconds", "2", "--fleet", "5",
                     "--interval", "1", "--database-url", database_url, "--mqtt-url", mqtt_url])
    api = report["api"]
    assert api["vehicles_shown"] == 5
    plain, conditional = api["runs"]
    assert plain["errors"] == {} and plain["statuses"].get("200", 0) == plain["requests"] > 0
    assert conditional["errors"] == {} and conditional["statuses"].get("304", 0) > 0
    report["environment"] = {"cpus": 2, "server": "x"}
    assert "If-None-Match" in render_api(report)


# --- bench soak: a tiny town for 45 s, with both faults squeezed in ---------------------

@pytest.mark.slow
@pytest.mark.services
def test_bench_soak_smoke_loses_nothing(database_url: str, tmp_path: Path) -> None:
    from collector.bench.soak import run_soak
    from collector.bench.soakreport import render
    from machikit import testbed

    if not testbed.is_controllable():
        pytest.skip("bench soak starts the test bed's Mosquitto: needs root and the test bed")
    path = tmp_path / "soak.json"
    args = build_parser("bench").parse_args([
        "bench", "soak", "--duration", "45", "--vehicles", "10", "--vehicle-every", "1",
        "--sensors", "3", "--sensor-every", "5", "--viewers", "20", "--pollers", "5",
        "--poll-every", "2", "--database-url", database_url, "--json", str(path)])
    assert run_soak(args, "machikit bench soak") == 0
    report = json.loads(path.read_text(encoding="utf-8"))
    counts = report["counts"]
    assert report["verdict"] == {"loss": 0, "duplicates": 0, "quarantined": 0,
                                 "exactly_once": True}
    # 10 vehicles x 45 s + 3 sensors x 9, every one acknowledged and stored once
    assert counts["sent_acked"] == counts["stored"] == report["published"]["published"] == 477
    assert counts["positions"] == 450 and counts["readings"] == 27
    broker, collector = report["events"]
    assert (broker["what"], collector["what"]) == ("broker_restart", "collector_kill")
    assert 10 <= broker["at_s"] < collector["at_s"] <= 35
    assert broker["data_again_s"] is not None and collector["data_again_s"] >= 5  # RestartSec
    assert report["published"]["vehicles"]["reconnects"] >= 10  # every device came back
    memory = report["memory_mb"]
    assert memory["collector"]["processes"] == 2 and memory["broker"]["processes"] == 2
    assert all(memory[part]["start"] > 0 for part in ("collector", "broker", "api"))
    delays = report["delays_ms"]
    assert delays["baseline"]["received"]["count"] > 0 and delays["run"]["live"]["count"] > 0
    assert delays["run"]["received"]["max"] >= 5000  # the kill held messages up
    assert report["live"]["connected"] == 20 and report["live"]["dropped"] == 0
    assert report["api_5xx"] == 0 and report["pollers"]["requests"] > 0
    assert report["collector_db_errors"] >= 0  # others' tests may restart the shared database
    assert report["machine"]["cpus"] and len(report["machine"]["load_end"]) == 3
    assert report["database"] not in bench_databases(database_url)
    assert "LOSS" in render(report)
