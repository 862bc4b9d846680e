"""The options of `machikit bench live` and `machikit bench api`, as one WebPlan."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from collector.bench.plan import numbers, pairs, service_url


@dataclass
class WebPlan:
    database_url: str
    mqtt_url: str
    seconds: float
    fleet: int = 50  # public buses
    interval_s: float = 5.0  # each bus sends a position this often
    clients: list[int] = field(default_factory=lambda: [2000])  # live: one run each
    client_processes: int | None = None  # live: None = one per 2000 clients
    rates: list[int] = field(default_factory=lambda: [200])  # api: requests/s, one run each
    connections: int = 16  # api: keep-alive connections
    live_clients: int = 0  # api: SSE clients listening meanwhile
    server_env: dict[str, str] = field(default_factory=dict)
    api_workers: int = 1  # `machikit api --workers N`
    profile_dir: Path | None = None
    json_path: Path | None = None
    command: str = ""


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", type=int, default=50, help="公開バスの台数 / public buses")
    parser.add_argument("--interval", type=float, default=5.0,
                        help="各バスの送信間隔（秒） / seconds between a bus's positions")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="サーバーの設定 / server setting, e.g. MACHIKIT_WEB__LIVE_POLL_S=1")
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API のプロセス数 / machikit api --workers N")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy で API プロセスを計測 / profile the API process with py-spy")


def add_live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", default="2000",
                        help="同時接続数（カンマ区切りで順に） / SSE clients, e.g. 500,1000,2000")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="各回の計測秒数 / seconds each run publishes")
    parser.add_argument("--client-processes", default="auto",
                        help="クライアントのプロセス数 / client processes (auto: 1 per 2000)")
    add_common(parser)


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", default="200",
                        help="毎秒のリクエスト数（カンマ区切りで順に） / req/s, e.g. 200,1000")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="各回の計測秒数 / seconds each run offers the rate")
    parser.add_argument("--connections", type=int, default=16,
                        help="keep-alive 接続数 / keep-alive connections")
    parser.add_argument("--live-clients", type=int, default=0,
                        help="同時にライブ配信を受ける数 / SSE clients listening meanwhile")
    add_common(parser)


def web_plan_from_args(args: argparse.Namespace, command: str = "") -> WebPlan:
    live = args.what == "live"
    processes = getattr(args, "client_processes", "auto")
    return WebPlan(
        database_url=args.database_url or service_url("MACHIKIT_TEST_DATABASE_URL"),
        mqtt_url=args.mqtt_url or service_url("MACHIKIT_TEST_MQTT_URL"),
        seconds=args.seconds, fleet=numbers(str(args.fleet), "--fleet")[0],
        interval_s=args.interval,
        clients=numbers(args.clients, "--clients") if live else [],
        client_processes=None if processes == "auto" else numbers(processes, "")[0],
        rates=numbers(args.rate, "--rate") if not live else [],
        connections=getattr(args, "connections", 16),
        live_clients=getattr(args, "live_clients", 0),
        server_env=pairs(args.server_env, "--server-env"), api_workers=args.api_workers,
        profile_dir=Path(args.profile) if args.profile else None,
        json_path=Path(args.json) if args.json else None, command=command,
    )
