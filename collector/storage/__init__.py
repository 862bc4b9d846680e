"""Storage engines behind one interface, chosen by the database URL.

sqlite:///path/to/file.db   the embedded default (stdlib sqlite3)
postgresql://user:pw@host/db  PostgreSQL + TimescaleDB (production)
"""

import argparse
from collections.abc import Callable

from collector.settings import Settings, load_settings, redact
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


def run_with_storage(config: str | None, work: Callable[[Storage, Settings], str]) -> int:
    """For one-shot commands: open the configured database, do the work, print its answer."""
    settings = load_settings(config)
    storage = open_storage(settings.database())
    try:
        print(work(storage, settings))
    except StorageUnavailable as err:
        print(say("error", detail=err))
        return 1
    finally:
        storage.close()
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    return run_with_storage(args.config, lambda storage, _: say("migrated",
                                                                version=storage.migrate()))
