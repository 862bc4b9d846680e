"""PostgreSQL + TimescaleDB storage (production).

A batch is COPYed into per-connection staging tables, then moved with
INSERT … ON CONFLICT DO NOTHING, so replays and redeliveries store once.
Only Apache-2 TimescaleDB features are used (hypertables, drop_chunks).
"""

import threading

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from collector.storage import pg_write
from collector.storage.base import (
    TABLES,
    TIME_COLUMNS,
    Batch,
    Device,
    DeviceAccount,
    StorageUnavailable,
    WriteResult,
)
from collector.storage.migrations import pending
from collector.storage.reads_postgres import PostgresReads
from machikit.texts import say

MIGRATION_LOCK = 0x6D616368  # 'mach': two workers starting together migrate once
DEVICE_COLUMNS = "id, town, name, kind, public, label, settings"
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


class PostgresStorage(PostgresReads):
    engine = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self._types: dict[str, list[str]] | None = None  # known on the current connection
        self._lock = threading.RLock()

    # --- connection ---------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except TRANSIENT as err:
                raise StorageUnavailable(str(err).strip()) from err
            self._types = None
        return self._conn

    def _run(self, work):
        """Run work(conn); a lost connection becomes StorageUnavailable.

        The lock lets the API's threads share one connection (the collector has
        its own storage object and never waits for it)."""
        with self._lock:
            conn = self._connection()
            try:
                return work(conn)
            except TRANSIENT as err:
                conn.close()
                raise StorageUnavailable(str(err).strip()) from err

    # --- schema ---------------------------------------------------------------

    def migrate(self) -> int:
        return int(self._run(self._migrate))

    def _migrate(self, conn: psycopg.Connection) -> int:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for migration in pending(self.engine, applied):
                _apply(conn, migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0) if row else 0

    # --- writing --------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        return self._run(lambda conn: self._write(conn, batch))

    def _write(self, conn: psycopg.Connection, batch: Batch) -> WriteResult:
        if not len(batch):
            return WriteResult()
        if self._types is None:  # once per connection
            self._types = pg_write.column_types(conn)
            pg_write.create_staging(conn)
        if len(batch) <= pg_write.SMALL_BATCH:
            return pg_write.insert_small(conn, batch, self._types)
        return pg_write.copy_big(conn, batch)

    # --- devices ----------------------------------------------------------------

    def find_devices(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Device]:
        towns, names = [k[0] for k in keys], [k[1] for k in keys]
        rows = self._run(lambda conn: conn.execute(
            f"SELECT {DEVICE_COLUMNS} FROM devices"
            " JOIN unnest(%s::text[], %s::text[]) AS k(town, name) USING (town, name)"
            " WHERE revoked_at IS NULL", (towns, names),
        ).fetchall())
        return {(r[1], r[2]): Device(*r) for r in rows}

    def add_device(self, town: str, name: str, kind: str = "sensor", public: bool = False,
                   label: str | None = None, settings: dict | None = None) -> Device:
        row = self._run(lambda conn: conn.execute(
            "INSERT INTO devices (town, name, kind, public, label, settings)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (town, name) DO UPDATE SET kind = excluded.kind,"
            " public = excluded.public, label = excluded.label,"
            " settings = excluded.settings, revoked_at = NULL"
            f" RETURNING {DEVICE_COLUMNS}",
            (town, name, kind, public, label, Jsonb(settings or {})),
        ).fetchone())
        return Device(*row)

    def device_accounts(self, town: str | None = None) -> list[DeviceAccount]:
        rows = self._run(lambda conn: conn.execute(
            f"SELECT {DEVICE_COLUMNS}, mqtt_user, password_hash,"
            " (extract(epoch FROM created_at) * 1000)::bigint,"
            " (extract(epoch FROM revoked_at) * 1000)::bigint"
            " FROM devices WHERE %(town)s::text IS NULL OR town = %(town)s ORDER BY town, name",
            {"town": town},
        ).fetchall())
        return [DeviceAccount(Device(*r[:7]), r[7], r[8], r[9], r[10]) for r in rows]

    def set_credentials(self, town: str, name: str, mqtt_user: str, password_hash: str) -> bool:
        count = self._run(lambda conn: conn.execute(
            "UPDATE devices SET mqtt_user = %s, password_hash = %s, password_changed_at = now()"
            " WHERE town = %s AND name = %s", (mqtt_user, password_hash, town, name),
        ).rowcount)
        return bool(count)

    def revoke_device(self, town: str, name: str, now_ms: int) -> bool:
        count = self._run(lambda conn: conn.execute(
            "UPDATE devices SET revoked_at = to_timestamp(%s / 1000.0)"
            " WHERE town = %s AND name = %s AND revoked_at IS NULL", (now_ms, town, name),
        ).rowcount)
        return bool(count)

    def boot_starts(self, candidates: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
        keys = list(candidates)
        args = ([k[0] for k in keys], [k[1] for k in keys], [candidates[k] for k in keys])
        rows = self._run(lambda conn: _boot_starts(conn, args))
        return {(d, b): int(start) for d, b, start in rows}

    # --- housekeeping -------------------------------------------------------------

    def apply_retention(self, days: dict[str, int], now_ms: int) -> dict[str, int]:
        dropped = {}
        for table, keep in days.items():
            if keep > 0:
                rows = self._run(lambda conn, t=table, k=keep: conn.execute(
                    "SELECT drop_chunks(%s, older_than => to_timestamp(%s / 1000.0)"
                    " - make_interval(days => %s))", (t, now_ms, k),
                ).fetchall())
                dropped[table] = len(rows)
        return dropped

    def counts(self) -> dict[str, int]:
        return self._run(lambda conn: {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]
            for table in TABLES
        })

    def recent(self, table: str, limit: int) -> list[dict[str, object]]:
        columns = TABLES[table]
        values = sql.SQL(", ").join(
            sql.SQL("(extract(epoch FROM t.{}) * 1000)::bigint").format(sql.Identifier(c))
            if c in TIME_COLUMNS else sql.SQL("t.{}").format(sql.Identifier(c))
            for c in columns
        )
        query = sql.SQL("SELECT {}, d.name FROM {} t JOIN devices d ON d.id = t.device_id"
                        " ORDER BY t.time DESC LIMIT %s").format(values, sql.Identifier(table))
        rows = self._run(lambda conn: conn.execute(query, (limit,)).fetchall())
        return [dict(zip((*columns, "device"), row, strict=True)) for row in rows]

    def info(self) -> dict[str, str]:
        row = self._run(lambda conn: conn.execute(
            "SELECT current_setting('server_version'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),"
            " current_setting('timescaledb.license', true)"
        ).fetchone())
        return {"engine": "postgres", "version": row[0], "timescaledb": row[1] or "",
                "license": row[2] or ""}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _apply(conn: psycopg.Connection, script: str) -> None:
    try:
        conn.execute(script)
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile,
            psycopg.errors.InsufficientPrivilege) as err:
        if "timescaledb" in str(err):
            raise SystemExit(say("timescaledb_missing") + f"\n{err}") from err
        raise


def _boot_starts(conn: psycopg.Connection, args: tuple[list, list, list]) -> list:
    with conn.transaction():
        conn.execute(
            "INSERT INTO device_boots SELECT d, b, to_timestamp(s / 1000.0)"
            " FROM unnest(%s::int[], %s::int[], %s::bigint[]) AS x(d, b, s)"
            " ON CONFLICT DO NOTHING", args,
        )
        return conn.execute(
            "SELECT device_id, boot, (extract(epoch FROM started_at) * 1000)::bigint"
            " FROM device_boots JOIN unnest(%s::int[], %s::int[]) AS x(d, b)"
            " ON device_id = d AND boot = b", args[:2],
        ).fetchall()
