"""Backup and restore of the embedded SQLite database.

The copy uses SQLite's own backup API in one step: it reads one consistent snapshot
while `machikit serve` goes on writing (WAL mode lets readers and the writer work at
the same time). The backup is a plain SQLite file, so it can be opened and checked.
"""

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from collector.backup_files import BackupError
from machikit.private import new_folders, temporary_next_to
from machikit.texts import say

MAGIC = b"SQLite format 3\0"


def is_sqlite_file(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def row_counts(db: sqlite3.Connection) -> dict[str, int]:
    tables = [name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def read_only(path: Path) -> sqlite3.Connection:
    # A URI keeps spaces and Japanese in folder names working (as_uri quotes them).
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=10000")
    return db


def copy_database(source: sqlite3.Connection, target: Path) -> dict[str, int]:
    """Copy source into the (empty, owner-only) file target as one self-contained file."""
    with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as copy:
        # pages=-1: everything in one step. In small steps, each write of the collector
        # in between would restart the copy, and a busy collector would never let it end.
        source.backup(copy, pages=-1)
        copy.execute("PRAGMA journal_mode=DELETE")  # no -wal file next to a backup
        check(copy, target)
        counts = row_counts(copy)
    fsync(target)
    return counts


def check(db: sqlite3.Connection, path: Path) -> None:
    (answer,) = db.execute("PRAGMA quick_check").fetchone()
    if answer != "ok":
        raise BackupError(say("backup_bad_file", file=path, detail=answer))


def fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def backup(database: Path, out: Path) -> dict[str, int]:
    if not database.is_file():
        raise BackupError(say("backup_no_database", path=database))
    temporary = temporary_next_to(out)
    try:
        # Not mode=ro: a read-only connection could not tidy the -wal and -shm files away
        # when it is the last one to close (serve stopped); query_only keeps it reading.
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
            db.execute("PRAGMA query_only=ON")
            counts = copy_database(db, temporary)
        temporary.replace(out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return counts


def read_backup(file: Path) -> dict[str, int]:
    """Row counts of a backup file, after SQLite's own check of its pages."""
    try:
        with contextlib.closing(read_only(file)) as db:
            check(db, file)
            return row_counts(db)
    except sqlite3.DatabaseError as err:
        raise BackupError(say("backup_bad_file", file=file, detail=err)) from err


@contextlib.contextmanager
def nobody_else_uses(database: Path) -> Iterator[sqlite3.Connection]:
    """The database locked for us alone, or BackupError if a program has it open.

    In WAL mode every open connection keeps a shared lock on the file, so an exclusive
    lock succeeds only when no `serve`, `api` or viewer has it open. On leaving, SQLite
    folds the -wal file into the database and removes it."""
    db = sqlite3.connect(database, isolation_level=None, timeout=0)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        db.execute("COMMIT")
    except sqlite3.OperationalError as err:
        db.close()
        raise BackupError(say("restore_in_use", path=database)) from err
    try:
        yield db
    finally:
        db.close()


def restore(file: Path, database: Path, force: bool) -> tuple[dict[str, int], Path | None]:
    """Replace database with the backup file; returns the row counts and where the
    previous database was kept (None if there was none with data)."""
    read_backup(file)
    if database.exists():
        with nobody_else_uses(database) as db:
            refuse_data(db, database, force)  # before the copy, which may take minutes
    new_folders(database.parent)
    temporary = temporary_next_to(database)
    try:
        with contextlib.closing(read_only(file)) as source:
            counts = copy_database(source, temporary)
        kept = _replace(temporary, database, force)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return counts, kept


def _replace(new: Path, database: Path, force: bool) -> Path | None:
    if not database.exists():
        new.replace(database)
        return None
    with nobody_else_uses(database) as db:
        rows = refuse_data(db, database, force)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    kept = _keep_previous(database) if rows else None
    for leftover in ("-wal", "-shm", "-journal"):  # they belong to the previous database
        database.with_name(database.name + leftover).unlink(missing_ok=True)
    new.replace(database)  # atomic: readers see the old file or the new one, never half
    return kept


def refuse_data(db: sqlite3.Connection, database: Path, force: bool) -> int:
    """The number of rows in database; BackupError if there are any and no --force.
    The schema's own version rows are no data: a `serve` started once has only those."""
    rows = sum(n for table, n in row_counts(db).items() if table != "schema_migrations")
    if rows and not force:
        raise BackupError(say("restore_not_empty", target=database, rows=rows))
    return rows


def _keep_previous(database: Path) -> Path:
    """The replaced database stays next to it under a dated name: --force on the wrong
    file must not lose a town's data. A hard link costs no space."""
    kept = database.with_name(f"{database.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.link(database, kept)
    except OSError:
        shutil.copy2(database, kept)
    return kept
