"""`machikit dev services up|down|env|status|reset` and `machikit dev py313`."""

import argparse
import json
import os
import shlex
import sys
import time

from machikit.testbed import services
from machikit.testbed.client_python import CLIENT_TESTS, run_client_tests
from machikit.testbed.layout import current, locked, read_env
from machikit.testbed.system import TestbedError
from machikit.texts import say

ACTIONS = ("up", "down", "env", "status", "reset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dev_command", required=True)
    svc = sub.add_parser(
        "services", help="テスト用の実サービス / the real test services",
        description="TimescaleDB・Mosquitto・MicroPython（Debian 13 の root から）/ "
                    "TimescaleDB, Mosquitto and MicroPython from a Debian 13 root",
    )
    svc.add_argument("action", choices=ACTIONS)
    svc.add_argument("--json", action="store_true", help="env: JSON で出力 / print JSON")
    py313 = sub.add_parser(
        "py313", help="クライアント側のテストを Python 3.13 で / the client tests on Python 3.13",
        description="テスト用の Debian 13 環境の Python 3.13 で pytest を実行（root が必要）/ "
                    "run pytest under the Python 3.13 of the test bed's Debian 13 root (root)",
    )
    # REMAINDER: everything after `py313` goes to pytest as it is (argparse cannot take a
    # leading option there, hence `--`).
    py313.add_argument(
        "pytest_args", nargs=argparse.REMAINDER,
        help=f"pytest の引数（テストの指定がなければ {' '.join(CLIENT_TESTS)}。"
             "- で始まるときは前に --）/ pytest arguments (without test paths: "
             f"{' '.join(CLIENT_TESTS)}; put -- before a leading option)",
    )


def run_dev(args: argparse.Namespace) -> int:
    if args.dev_command == "services":
        return run_services(args.action, as_json=args.json)
    if args.dev_command == "py313":
        return run_py313(args.pytest_args)
    return 2


def run_services(action: str, as_json: bool = False) -> int:
    if action == "env":
        return _print_env(as_json)
    if action != "status" and os.geteuid() != 0:
        print(say("needs_root"), file=sys.stderr)
        return 2
    try:
        if action == "status":
            return _status()
        with locked(current()):
            return _privileged(action)
    except TestbedError as exc:
        print(say("testbed_failed", step=exc), file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1


def run_py313(pytest_args: list[str]) -> int:
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    try:
        return run_client_tests(pytest_args).returncode
    except TestbedError as exc:
        print(exc, file=sys.stderr)
        return 2


def _status() -> int:
    lines, ok = services.status(current(), as_root=os.geteuid() == 0)
    print("\n".join(lines))
    return 0 if ok else 3


def _privileged(action: str) -> int:
    layout = current()
    started = time.monotonic()
    if action == "up":
        services.up(layout)
        lines, _ok = services.status(layout, as_root=True)
        print("\n".join(lines))
        print(say("testbed_up", seconds=time.monotonic() - started, path=layout.env_file))
    elif action == "down":
        services.down(layout)
        print(say("testbed_down"))
    elif action == "reset":
        print(say("testbed_reset", count=services.reset(layout)))
    return 0


def _print_env(as_json: bool) -> int:
    env = read_env(current())
    if env is None:
        print(say("testbed_absent", path=current().base), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(env, indent=2))
    else:
        print("\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items()))
    return 0
