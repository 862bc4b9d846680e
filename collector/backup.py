"""`machikit backup`: one file holding the whole database, safe to make while serving.

SQLite (the embedded default): an online copy with SQLite's backup API.
TimescaleDB: pg_dump's own format (restore with `machikit restore`).
The file is owner-only (it holds the devices' password hashes) and appears only when
complete (written under a temporary name, then renamed).
"""

import argparse
from pathlib import Path

from collector import backup_postgres, backup_sqlite
from collector.backup_files import human_size, or_one_line, output_path, rows_report
from collector.settings import load_settings
from machikit.texts import say


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("--out", help="書き出すファイルかフォルダー（省略時: 今のフォルダーに"
                                      "日付の名前） / file or folder to write"
                                      " (default: a dated name in the current folder)")
    add_pg_bin(parser)


def add_pg_bin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pg-bin", help="pg_dump と pg_restore のあるフォルダー"
                                         " / folder with pg_dump and pg_restore"
                                         f" (or {backup_postgres.PG_BIN_ENV})")


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def make_backup(url: str, out: Path, pg_bin: str | None = None) -> dict[str, int]:
    database = sqlite_path(url)
    if database is not None:
        return backup_sqlite.backup(database, out)
    return backup_postgres.backup(url, out, pg_bin)


def run_backup(args: argparse.Namespace) -> int:
    url = load_settings(args.config).database()
    out = output_path(args.out, "sqlite" if sqlite_path(url) else "postgres")
    counts = or_one_line(lambda: make_backup(url, out, args.pg_bin))
    if counts is None:
        return 1
    print(say("backup_done", path=out.resolve(), size=human_size(out.stat().st_size)))
    print(rows_report(counts))
    return 0
