"""`machikit bench ingest|live|api|soak`: the numbers behind DESIGN and
docs/benchmarks.md, measured on the real Mosquitto and TimescaleDB.

ingest: how fast the collector stores messages (ingest.py).
live:   how late the live stream's updates reach thousands of SSE clients (live.py).
api:    `GET …/vehicles` latency under a paced, open-loop load (apibench.py).
soak:   an hour of a town's load with a broker restart and a collector crash (soak.py).
Every run has a fresh database, its own town and MQTT sessions, all removed
afterwards (also on Ctrl-C).
"""

import argparse
import shlex
import signal
import sys

from collector.bench.ingest import run_plan  # the ingest bench from code (tests)
from machikit.texts import say

__all__ = ["add_arguments", "progress", "run_bench", "run_plan"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from collector.bench.plan import add_ingest_arguments, add_services
    from collector.bench.soak import add_soak_arguments
    from collector.bench.webplan import add_api_arguments, add_live_arguments

    what = parser.add_subparsers(dest="what", required=True, metavar="{ingest,live,api,soak}",
                                 help="測る対象 / what to measure")
    for name, add, text in (
            ("ingest", add_ingest_arguments, "取り込み性能 / collector ingest throughput"),
            ("live", add_live_arguments, "ライブ配信の遅延 / live stream fan-out delay"),
            ("api", add_api_arguments, "公開APIの応答時間 / public API latency")):
        sub = what.add_parser(name, help=text, description=text)
        add(sub)
        add_services(sub)
    text = "1時間の連続運転と障害 / an hour at town load, with faults"
    add_soak_arguments(what.add_parser("soak", help=text, description=text))


def run_bench(args: argparse.Namespace) -> int:
    _check_tools()
    command = "machikit " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "machikit bench"
    # SIGTERM unwinds like Ctrl-C, so sessions and databases are still cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: _interrupt())
    if args.what == "ingest":
        from collector.bench.ingest import run_ingest

        return run_ingest(args, command)
    if args.what == "soak":
        from collector.bench.soak import run_soak

        return run_soak(args, command)
    from collector.bench.web import run_web

    return run_web(args, command)


def _check_tools() -> None:
    """psutil (CPU per process) comes with the dev extra, not with the collector's: fail
    before any measurement starts (machikit/cli.py turns this into one line)."""
    import psutil  # noqa: F401


def _interrupt() -> None:
    raise KeyboardInterrupt


def progress(key: str, **values: object) -> None:
    print(say(key, **values), file=sys.stderr, flush=True)
