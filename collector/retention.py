"""Dropping data past its retention period (Apache TimescaleDB: drop_chunks).

TimescaleDB's own retention policies are a Timescale-License feature, so the
collector schedules drop_chunks itself: at start, then every retention_interval_s.
"""

import argparse
import logging
import time

from collector.settings import Settings
from collector.storage import Storage, StorageUnavailable, run_with_storage
from machikit.texts import say

log = logging.getLogger("machikit.collector")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def apply(storage: Storage, settings: Settings) -> dict[str, int]:
    removed = storage.apply_retention(settings.retention.model_dump(), now_ms())
    if any(removed.values()):
        log.info(say("retention_done", detail=removed))
    return removed


class RetentionSchedule:
    """Runs `apply` in the writer's thread when it is due (it needs the database)."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage, self.settings = storage, settings
        self.due = time.monotonic()

    def maybe_run(self) -> None:
        if time.monotonic() < self.due:
            return
        self.due = time.monotonic() + self.settings.retention_interval_s
        try:
            apply(self.storage, self.settings)
        except StorageUnavailable as err:
            log.warning("retention skipped: %s", err)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")


def run_retention(args: argparse.Namespace) -> int:
    def work(storage: Storage, settings: Settings) -> str:
        storage.migrate()
        return say("retention_done", detail=apply(storage, settings))

    return run_with_storage(args.config, work)
