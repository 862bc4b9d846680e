"""`machikit restore FILE`: put a backup of `machikit backup` back.

SQLite: refused while a program has the database open, and over a database with
data unless --force (the replaced file is then kept next to it); the new file
replaces the old one in one step. TimescaleDB: only into an EMPTY database, with
TimescaleDB's restore steps (collector/backup_postgres.py).
"""

import argparse
from pathlib import Path

from collector import backup_postgres, backup_sqlite
from collector.backup import add_pg_bin, sqlite_path
from collector.backup_files import BackupError, or_one_line, rows_report
from collector.settings import load_settings, redact
from machikit.texts import say


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("file", type=Path, help="バックアップファイル / backup file")
    parser.add_argument("--force", action="store_true",
                        help="データのある SQLite を置き換える（元のファイルは残す）"
                             " / replace an SQLite database with data (the old file is kept)")
    add_pg_bin(parser)


def restore_backup(file: Path, url: str, force: bool = False,
                   pg_bin: str | None = None) -> tuple[dict[str, int], Path | None]:
    """Row counts of the restored database, and where a replaced SQLite file was kept."""
    if not file.is_file():
        raise BackupError(say("backup_not_found", file=file))
    database = sqlite_path(url)
    if database is not None:
        _same_kind(file, backup_sqlite.is_sqlite_file(file), "SQLite")
        return backup_sqlite.restore(file, database, force)
    _same_kind(file, backup_postgres.is_dump_file(file), "PostgreSQL")
    return backup_postgres.restore(file, url, pg_bin), None


def _same_kind(file: Path, matches: bool, engine: str) -> None:
    if not matches:
        raise BackupError(say("backup_wrong_kind", file=file, engine=engine))


def run_restore(args: argparse.Namespace) -> int:
    url = load_settings(args.config).database()
    restored = or_one_line(lambda: restore_backup(args.file, url, args.force, args.pg_bin))
    if restored is None:
        return 1
    counts, kept = restored
    print(say("restore_done", file=args.file, target=redact(url)))
    if kept:
        print(say("restore_kept_old", path=kept))
    print(rows_report(counts))
    return 0
