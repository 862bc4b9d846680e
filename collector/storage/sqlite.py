"""SQLite storage: the embedded default (a workshop laptop, a Raspberry Pi).

One file, WAL mode so readers never block the collector, synchronous=FULL
because the collector acknowledges a message only after its commit.
"""

import json
import sqlite3
import threading
from pathlib import Path

from collector.storage.base import (
    DATA_TABLES,
    TABLES,
    Batch,
    Device,
    DeviceAccount,
    StorageFull,
    StorageUnavailable,
    WriteResult,
)
from collector.storage.migrations import pending
from collector.storage.reads_sqlite import SqliteReads
from machikit.private import private_sqlite_files

DEVICE_COLUMNS = "id, town, name, kind, public, label, settings"


class SqliteStorage(SqliteReads):
    engine = "sqlite"

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            private_sqlite_files(Path(path))  # it holds the devices' password hashes
        self.path = path
        # The collector writes from its own thread; the lock keeps other users safe.
        self._lock = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("PRAGMA foreign_keys=ON")

    def migrate(self) -> int:
        with self._lock:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            applied = {v for (v,) in self.db.execute("SELECT version FROM schema_migrations")}
            for migration in pending(self.engine, applied):
                self._apply(migration.version, migration.name, migration.sql)
            (version,) = self.db.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(version or 0)

    def _apply(self, version: int, name: str, sql: str) -> None:
        try:
            self.db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations VALUES ({version}, "
                f"'{name}', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));\nCOMMIT;"
            )
        except sqlite3.Error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def write(self, batch: Batch) -> WriteResult:
        result = WriteResult()
        with self._lock, self._transaction():
            for table in DATA_TABLES:
                rows = batch.rows[table]
                if rows:
                    stored = self._insert(table, rows, "ON CONFLICT DO NOTHING")
                    result.stored += stored
                    result.duplicates += len(rows) - stored
            if batch.rows["quarantine"]:
                result.quarantined = self._insert("quarantine", batch.rows["quarantine"], "")
        return result

    def _insert(self, table: str, rows: list, conflict: str) -> int:
        columns = TABLES[table]
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}"
        return self.db.executemany(sql, rows).rowcount

    def _transaction(self) -> "_Transaction":
        return _Transaction(self.db)

    def find_devices(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Device]:
        found = {}
        with self._lock:
            for town, name in keys:
                row = self.db.execute(
                    f"SELECT {DEVICE_COLUMNS} FROM devices"
                    " WHERE town = ? AND name = ? AND revoked_at IS NULL",
                    (town, name),
                ).fetchone()
                if row:
                    found[(town, name)] = _device(row)
        return found

    def add_device(self, town: str, name: str, kind: str = "sensor", public: bool = False,
                   label: str | None = None, settings: dict | None = None) -> Device:
        with self._lock:
            row = self.db.execute(
                "INSERT INTO devices (town, name, kind, public, label, settings)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (town, name) DO UPDATE SET kind = excluded.kind,"
                " public = excluded.public, label = excluded.label,"
                " settings = excluded.settings, revoked_at = NULL"
                f" RETURNING {DEVICE_COLUMNS}",
                (town, name, kind, int(public), label, json.dumps(settings or {})),
            ).fetchone()
        return _device(row)

    def device_accounts(self, town: str | None = None) -> list[DeviceAccount]:
        with self._lock:
            rows = self.db.execute(
                f"SELECT {DEVICE_COLUMNS}, mqtt_user, password_hash, created_at, revoked_at"
                " FROM devices WHERE ? IS NULL OR town = ? ORDER BY town, name", (town, town),
            ).fetchall()
        return [DeviceAccount(_device(r[:7]), r[7], r[8], r[9], r[10]) for r in rows]

    def set_credentials(self, town: str, name: str, mqtt_user: str, password_hash: str) -> bool:
        with self._lock:
            cursor = self.db.execute(
                "UPDATE devices SET mqtt_user = ?, password_hash = ?, password_changed_at ="
                " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
                " WHERE town = ? AND name = ?", (mqtt_user, password_hash, town, name),
            )
        return cursor.rowcount > 0

    def revoke_device(self, town: str, name: str, now_ms: int) -> bool:
        with self._lock:
            cursor = self.db.execute(
                "UPDATE devices SET revoked_at = ? WHERE town = ? AND name = ?"
                " AND revoked_at IS NULL", (now_ms, town, name),
            )
        return cursor.rowcount > 0

    def boot_starts(self, candidates: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
        with self._lock, self._transaction():
            self.db.executemany(
                "INSERT INTO device_boots VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(d, b, start) for (d, b), start in candidates.items()],
            )
            return {
                key: self.db.execute(
                    "SELECT started_at FROM device_boots WHERE device_id = ? AND boot = ?", key
                ).fetchone()[0]
                for key in candidates
            }

    def apply_retention(self, days: dict[str, int], now_ms: int) -> dict[str, int]:
        removed = {}
        # One transaction: on a full disk or a locked file it is put off whole, as a
        # StorageUnavailable the schedule expects, instead of ending the writer.
        with self._lock, self._transaction():
            for table, keep in days.items():
                if keep > 0:
                    column = "received_at" if table == "quarantine" else "time"
                    cutoff = now_ms - keep * 86_400_000
                    cursor = self.db.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))
                    removed[table] = cursor.rowcount
        return removed

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                table: self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in TABLES
            }

    def recent(self, table: str, limit: int) -> list[dict[str, object]]:
        columns = TABLES[table]
        with self._lock:
            rows = self.db.execute(
                f"SELECT {', '.join('t.' + c for c in columns)}, d.name FROM {table} t"
                " JOIN devices d ON d.id = t.device_id ORDER BY t.time DESC LIMIT ?", (limit,),
            ).fetchall()
        return [dict(zip((*columns, "device"), row, strict=True)) for row in rows]

    def info(self) -> dict[str, str]:
        return {"engine": "sqlite", "version": sqlite3.sqlite_version, "path": self.path}

    def close(self) -> None:
        self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, turning 'database is locked' into a retry."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise _unavailable(err) from err

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is None:
            try:
                # A full disk shows up here (WAL mode writes the pages at COMMIT): the
                # batch must be retried, not treated as bad data.
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as err:
                self._rollback()
                raise _unavailable(err) from err
            return
        self._rollback()
        if isinstance(error, sqlite3.OperationalError):
            raise _unavailable(error) from error

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself already (e.g. on "disk is full").
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


def _unavailable(err: sqlite3.OperationalError) -> StorageUnavailable:
    if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StorageFull(str(err))
    return StorageUnavailable(str(err))


def _device(row: tuple) -> Device:
    return Device(id=row[0], town=row[1], name=row[2], kind=row[3], public=bool(row[4]),
                  label=row[5], settings=json.loads(row[6]))
