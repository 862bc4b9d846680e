"""`machikit bench live` and `machikit bench api`: runs, environment, report."""

import argparse
import json
import os
import platform
import time
from importlib import metadata

from collector.bench import progress
from collector.bench.crowd import raise_nofile
from collector.bench.webplan import WebPlan, web_plan_from_args
from machikit.texts import say


def run_web(args: argparse.Namespace, command: str) -> int:
    from collector.bench.webreport import render_api, render_live

    # One socket per client, here and in the server (which inherits the limit).
    nofile = raise_nofile()
    plan = web_plan_from_args(args, command)
    report: dict = {"command": command, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "environment": environment(plan, nofile)}
    if args.what == "live":
        report["runs"] = run_live_sweep(plan)
        text = render_live(report)
    else:
        from collector.bench.apibench import run_api

        progress("bench_api_run", rate=",".join(map(str, plan.rates)), seconds=plan.seconds,
                 runs=2 * len(plan.rates))
        report["api"] = run_api(plan)
        text = render_api(report)
    print(text)
    if plan.json_path:
        plan.json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8", newline="\n")
        print(say("bench_saved", path=plan.json_path))
    return 0


def run_live_sweep(plan: WebPlan) -> list[dict]:
    from collector.bench.live import run_live

    runs = []
    for clients in plan.clients:
        progress("bench_live_run", clients=clients, seconds=plan.seconds)
        runs.append(run_live(plan, clients))
    return runs


def environment(plan: WebPlan, nofile: tuple[int, int]) -> dict:
    from collector.bench.bed import broker_version, environment, fresh_database
    from collector.bench.stack import has_api_command
    from collector.settings import Web

    with fresh_database(plan.database_url) as url:
        server = environment(url)
    poll = plan.server_env.get("MACHIKIT_WEB__LIVE_POLL_S", Web().live_poll_s)
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            **{name: _version(name) for name in ("uvicorn", "fastapi", "uvloop", "httptools")},
            "mosquitto": broker_version(plan.mqtt_url), **server,
            "server": ("machikit collect + machikit api" if has_api_command()
                       else "machikit serve (collector + API in one process)"),
            "server_env": plan.server_env, "live_poll_s": float(poll),
            "api_workers": plan.api_workers, "fleet": plan.fleet, "interval_s": plan.interval_s,
            "nofile_soft_hard": list(nofile)}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
