"""`machikit bench ingest`: how fast the collector stores messages, measured on
the real Mosquitto and TimescaleDB (DESIGN §4 has the numbers to expect).

Every run has a fresh database, its own town and MQTT sessions, all removed
afterwards (also on Ctrl-C): offered loads into one collector, backlog drains
by 1..n workers on a shared subscription, and a naive consumer to compare.
"""

import argparse
import json
import os
import platform
import time

from collector.bench.plan import Plan, plan_from_args
from machikit.texts import say

PUBLISHERS = ("multiprocessing (spawn) processes, each one paho-mqtt 2 client, MQTT 5, QoS 1, "
              "driven by client.loop() in its own thread, up to 1000 in flight; every PUBACK "
              "awaited. Loads: paced; backlogs: as fast as they go.")


def run_ingest(args: argparse.Namespace, command: str) -> int:
    from collector.bench.report import render

    plan = plan_from_args(args, command)
    report = run_plan(plan)
    print(render(report))
    if plan.json_path:
        plan.json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8", newline="\n")
        print(say("bench_saved", path=plan.json_path))
    return 0 if all_exactly_once(report) else 1


def run_plan(plan: Plan) -> dict:
    from collector.bench.measure import run_drain, run_load
    from collector.bench.report import targets

    report: dict = {"command": plan.command, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "environment": _environment(plan), "loads": [], "drains": []}
    for rate in plan.loads:
        _progress("bench_run_load", rate=rate, seconds=plan.seconds)
        report["loads"].append(run_load(plan, rate))
    if plan.drain:
        for workers in plan.workers:
            _progress("bench_run_drain", workers=workers, backlog=plan.backlog)
            report["drains"].append(run_drain(plan, workers))
        _naive(plan, report)
        _profiled(plan, report)
    report["targets"] = targets(report)
    return report


def _naive(plan: Plan, report: dict) -> None:
    from collector.bench.measure import run_naive

    if not plan.naive_backlog:
        return
    _progress("bench_run_naive", backlog=plan.naive_backlog)
    naive = run_naive(plan)
    report["drains"].append(naive)
    one = [d for d in report["drains"] if d["consumer"] == "collector" and d["workers"] == 1]
    if one and one[0]["rate"] and naive["rate"]:
        report["naive_ratio"] = round(one[0]["rate"] / naive["rate"], 1)


def _profiled(plan: Plan, report: dict) -> None:
    """A separate drain under py-spy, so the headline numbers are not perturbed."""
    from collector.bench.measure import run_drain

    if plan.profile_dir is None:
        return
    plan.profile_dir.mkdir(parents=True, exist_ok=True)
    _progress("bench_run_profile", path=plan.profile_dir)
    out = plan.profile_dir / f"collector-drain-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    report["drains"].append(run_drain(plan, 1, profile_to=out))


def _environment(plan: Plan) -> dict:
    import paho.mqtt
    import psycopg

    from collector.bench.bed import broker_version, environment, fresh_database

    with fresh_database(plan.database_url) as url:  # the server's settings, from a scratch db
        server = environment(url)
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "paho_mqtt": paho.mqtt.__version__, "psycopg": psycopg.__version__,
            "mosquitto": broker_version(plan.mqtt_url), **server,
            "fleet": plan.fleet, "collector_env": plan.collector_env,
            "publishers": PUBLISHERS, "rows_polled_every_s": 0.5}


def all_exactly_once(report: dict) -> bool:
    runs = report["loads"] + report["drains"]
    return all(r["check"]["exactly_once"] for r in runs)


def _progress(key: str, **values: object) -> None:
    from collector.bench import progress

    progress(key, **values)
