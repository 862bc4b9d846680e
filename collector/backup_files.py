"""What `machikit backup` and `machikit restore` share: names, sizes, the report."""

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from machikit.private import new_folders
from machikit.texts import say

T = TypeVar("T")


class BackupError(Exception):
    """A backup or restore that cannot be done (or would harm data); the message says
    why and what to do, in both languages."""


def or_one_line(work: Callable[[], T]) -> T | None:
    """The work's result, or None after one line on stderr (never a traceback)."""
    try:
        return work()
    except BackupError as err:
        print(err, file=sys.stderr)
    except (OSError, sqlite3.Error) as err:  # a full disk, a folder we may not write to
        print(say("error", detail=err), file=sys.stderr)
    return None


def dated_name(engine: str, now: float | None = None) -> str:
    """machikit-backup-20261206-0300.db (SQLite) or .dump (pg_dump's own format)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"machikit-backup-{stamp}.{'db' if engine == 'sqlite' else 'dump'}"


def output_path(out: str | None, engine: str) -> Path:
    """--out names a file, or a folder for the dated name (a nightly job's folder; one
    written with a final / is created, owner-only)."""
    if out is None:
        return Path(dated_name(engine))
    path = Path(out)
    if out.endswith(("/", os.sep)):
        new_folders(path)
    return path / dated_name(engine) if path.is_dir() else path


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} B"


def rows_report(counts: dict[str, int]) -> str:
    width = max((len(table) for table in counts), default=0)
    lines = [say("backup_rows") + ":"]
    lines += [f"  {table:<{width}}  {rows:>10}" for table, rows in counts.items()]
    return "\n".join(lines)
