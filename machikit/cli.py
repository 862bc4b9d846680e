"""The one `machikit` command.

Each tier is imported only when its command runs, so a Raspberry Pi never
loads the collector and a workshop laptop never needs PostgreSQL.
"""

import argparse
import codecs
import importlib
import io
import logging
import os
import sys
from collections.abc import Callable

from machikit import __version__
from machikit.texts import say

# command -> (module, function, extra needed, help text)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "serve": ("collector.serve", "run_serve", "collector",
              "サーバーを起動 (broker + collector) / run the server"),
    "demo": ("collector.demo", "run_demo", "collector",
             "模擬の機器付きデモ / demo with simulated devices"),
    "api": ("collector.api.server", "run_api", "collector",
            "公開APIと地図だけを起動 / run only the public API and map"),
    "collect": ("collector.ingest", "run_collect", "collector",
                "収集プロセスだけを起動 / run one collector worker"),
    "migrate": ("collector.storage", "run_migrate", "collector",
                "データベースを最新の版に / update the database schema"),
    "retention": ("collector.retention", "run_retention", "collector",
                  "古いデータを今すぐ削除 / drop data past retention now"),
    "stats": ("collector.stats", "run_stats", "collector",
              "収集の統計を表示 / show collector counters"),
    "bench": ("collector.bench", "run_bench", "dev",
              "性能を測る (ingest, live, api, soak) / benchmarks: ingest, live, API, soak"),
    "backup": ("collector.backup", "run_backup", "collector",
               "データベースをファイルにバックアップ / back up the database to a file"),
    "restore": ("collector.restore", "run_restore", "collector",
                "バックアップから復元 / restore the database from a backup"),
    "device": ("collector.registry", "run_device", "collector",
               "機器の登録と認証情報 / device registry and credentials"),
    "flash": ("machikit.flash.cli", "run_flash", "workshop",
              "ボードに書き込む / flash a board"),
    "workshop": ("machikit.workshop.cli", "run_workshop", "workshop",
                 "講習会: 名簿から一括準備・書き込み / workshop: roster, labels, flashing"),
    "pi": ("pi.cli", "run_pi", "pi",
           "Raspberry Pi のジョブ (GPS, プリンター, 積雪計) / Raspberry Pi jobs"),
    "grafana": ("machikit.grafana.cli", "run_grafana", "grafana",
                "Grafana にダッシュボードを入れる / Grafana dashboards: push, export"),
    "dev": ("machikit.testbed", "run_dev", "dev",
            "開発用: テスト用サービス / developer tools: test services"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Only the selected command's module is imported (for its options)."""
    parser = argparse.ArgumentParser(prog="machikit", description="まちキット / machikit")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="詳しいログ / debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, _func, _extra, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _add_options(name, module, command)
    return parser


def _selected_command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if arg in COMMANDS), None)


def _add_options(name: str, module: str, parser: argparse.ArgumentParser) -> None:
    """Let each command module declare its own options with add_arguments()."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if not err.name or err.name.split(".")[0] in OWN_PACKAGES:
            raise
        parser.set_defaults(_missing_extra=COMMANDS[name][2], _missing_module=err.name)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        return
    add: Callable[[argparse.ArgumentParser], None] | None = getattr(mod, "add_arguments", None)
    if add:
        add(parser)


# Which lock file brings each extra (requirements/README.md): a laptop's .venv has
# collector.lock, everything but the developer tools.
LOCK_OF_EXTRA = {"dev": "dev"}
OWN_PACKAGES = ("machikit", "collector", "pi")


def missing_extra(extra: str, module: str) -> str:
    """One line that says what to install, with the command that works from a checkout;
    or, for a standard-library module this OS lacks (termios, grp… on Windows), that the
    command is for Linux: no install would bring it."""
    if module.split(".")[0] in sys.stdlib_module_names:
        return say("linux_only", module=module)
    python = "py -3" if os.name == "nt" else "python3"
    return say("missing_extra", module=module, extra=extra,
               install=f"{python} quickstart.py install {LOCK_OF_EXTRA.get(extra, 'collector')}")


def console_never_crashes() -> None:
    """Output redirected on a Japanese Windows (or an older console) is encoded as cp932,
    which cannot show every character (𠮷 in a user's folder name, an exception's detail):
    print "?" for those instead of failing with UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and \
                codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    console_never_crashes()
    args = build_parser(_selected_command(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module, func, extra, _help = COMMANDS[args.command]
    if getattr(args, "_missing_extra", None):
        print(missing_extra(extra, args._missing_module), file=sys.stderr)
        return 2
    try:
        handler = getattr(importlib.import_module(module), func)
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print(say("interrupted"), file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:
        # A library imported only when the command runs (pynmea2 for gps-check…).
        if not err.name or err.name.split(".")[0] in OWN_PACKAGES:
            raise
        print(missing_extra(extra, err.name), file=sys.stderr)
        return 2
