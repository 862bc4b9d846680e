"""Storage engines behind one interface, chosen by the database URL.

sqlite:///path/to/file.db   the embedded default (stdlib sqlite3)
postgresql://user:pw@host/db  PostgreSQL + TimescaleDB (production)
"""

import argparse

from collector.settings import load_settings, redact
from collector.storage.base import Batch, Device, Storage, StorageUnavailable, WriteResult
from machikit.texts import say

__all__ = ["Batch", "Device", "Storage", "StorageUnavailable", "WriteResult", "open_storage"]


def open_storage(url: str) -> Storage:
    if url.startswith("sqlite:///"):
        from collector.storage.sqlite import SqliteStorage

        return SqliteStorage(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from collector.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    raise SystemExit(say("bad_database_url", url=redact(url)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")


def run_migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    storage = open_storage(settings.database())
    try:
        print(say("migrated", version=storage.migrate()))
    except StorageUnavailable as err:
        print(say("error", detail=err))
        return 1
    finally:
        storage.close()
    return 0
