"""The options of `machikit bench ingest`, turned into one Plan (and the
helpers every bench's options use)."""

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from machikit.texts import say

DEFAULT_LOADS = "1000,5000,10000,max"


@dataclass
class Plan:
    database_url: str
    mqtt_url: str
    loads: list[int]  # offered msg/s, one run each
    drain: bool  # "max" in --loads: backlog drain runs
    seconds: float
    workers: list[int]  # collector workers for the drain runs
    backlog: int
    naive_backlog: int  # 0: no naive baseline
    fleet: int  # vehicles publishing positions
    publishers: int | None  # publisher processes per run; None: chosen by load
    profile_dir: Path | None = None
    json_path: Path | None = None
    collector_env: dict[str, str] = field(default_factory=dict)
    command: str = ""


def add_services(parser: argparse.ArgumentParser) -> None:
    """Options every bench has."""
    parser.add_argument("--database-url", help="PostgreSQL URL (CREATEDB 権限 / with CREATEDB)")
    parser.add_argument("--mqtt-url", help="Mosquitto URL")
    parser.add_argument("--json", help="結果をJSONで保存 / write the report as JSON")


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loads", default=DEFAULT_LOADS, help=(
                        "送信負荷 msg/s、max=滞留の一括処理 / offered msg/s; max: backlog drain"))
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="各負荷の送信秒数 / seconds each load is offered")
    parser.add_argument("--workers", default="1,2",
                        help="一括処理の収集プロセス数 / collector workers for the drain")
    parser.add_argument("--backlog", type=int, default=200_000,
                        help="滞留させるメッセージ数 / messages queued for the drain")
    parser.add_argument("--naive-backlog", type=int, default=20_000,
                        help="素朴な比較対象の滞留数（0で省略） / naive baseline backlog (0: skip)")
    parser.add_argument("--fleet", type=int, default=200, help="車両数 / vehicles")
    parser.add_argument("--publishers", default="auto",
                        help="送信プロセス数 / publisher processes (auto or a number)")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy で収集プロセスを計測 / profile the collector with py-spy")
    parser.add_argument("--collector-env", action="append", default=[], metavar="KEY=VALUE",
                        help="収集プロセスの設定 / collector setting, e.g. MACHIKIT_BATCH_MAX=2000")


def plan_from_args(args: argparse.Namespace, command: str = "") -> Plan:
    loads, drain = _parse_loads(args.loads)
    return Plan(
        database_url=args.database_url or service_url("MACHIKIT_TEST_DATABASE_URL"),
        mqtt_url=args.mqtt_url or service_url("MACHIKIT_TEST_MQTT_URL"),
        loads=loads, drain=drain, seconds=args.seconds,
        workers=numbers(args.workers, "--workers"), backlog=args.backlog,
        naive_backlog=args.naive_backlog, fleet=args.fleet,
        publishers=None if args.publishers == "auto" else numbers(args.publishers, "")[0],
        profile_dir=Path(args.profile) if args.profile else None,
        json_path=Path(args.json) if args.json else None,
        collector_env=pairs(args.collector_env), command=command,
    )


def _parse_loads(text: str) -> tuple[list[int], bool]:
    items = [x.strip().lower() for x in text.split(",") if x.strip()]
    rates = [x for x in items if x != "max"]
    return numbers(",".join(rates), "--loads") if rates else [], "max" in items


def numbers(text: str, option: str) -> list[int]:
    try:
        values = [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise SystemExit(say("bench_bad_option", option=option, value=text)) from err
    if any(v <= 0 for v in values):
        raise SystemExit(say("bench_bad_option", option=option, value=text))
    return values


def pairs(items: list[str], option: str = "--collector-env") -> dict[str, str]:
    found = dict(item.split("=", 1) for item in items if "=" in item)
    if len(found) != len(items):
        raise SystemExit(say("bench_bad_option", option=option, value=items))
    return found


def service_url(variable: str) -> str:
    """Like the tests: the environment first, then the test bed's env.json."""
    value = os.environ.get(variable)
    if not value:
        try:
            from machikit import testbed

            value = (testbed.load_env() or {}).get(variable)
        except ImportError:
            value = None
    if not value:
        raise SystemExit(say("bench_no_services", variable=variable))
    return value
