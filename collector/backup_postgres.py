"""Backup and restore of PostgreSQL + TimescaleDB with pg_dump and pg_restore.

TimescaleDB's documented way ("Logical backups with pg_dump and pg_restore"):
pg_dump -Fc; restore into an EMPTY database between timescaledb_pre_restore() and
timescaledb_post_restore(), with the same TimescaleDB version on both sides.
The tools must be of the server's major version (pg_dump refuses a newer server):
from PATH, or from the folder given by --pg-bin / MACHIKIT_PG_BIN.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from collector.backup_files import BackupError
from machikit.private import temporary_next_to
from machikit.texts import say

MAGIC = b"PGDMP"
PG_BIN_ENV = "MACHIKIT_PG_BIN"
USER_TABLES = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
               " AND table_type = 'BASE TABLE' ORDER BY table_name")


def is_dump_file(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def tool(name: str, pg_bin: str | None) -> str:
    folder = pg_bin or os.environ.get(PG_BIN_ENV)
    found = shutil.which(name, path=folder) if folder else shutil.which(name)
    if not found:
        raise BackupError(say("pg_tool_missing", tool=name))
    return found


def without_password(url: str) -> tuple[str, dict[str, str]]:
    """The connection string for a tool's --dbname, and the password as PGPASSWORD:
    `ps` shows every program's arguments to every user, but not its environment."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ, "PGPASSWORD": str(password)} if password else dict(os.environ)
    return make_conninfo("", **params), env


def run_tool(argv: list[str], env: dict[str, str], **streams: object) -> None:
    result = subprocess.run(argv, env=env, stderr=subprocess.PIPE, check=False,
                            **streams)  # type: ignore[call-overload]
    if result.returncode:
        detail = result.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise BackupError(say("pg_tool_failed", tool=Path(argv[0]).name, detail=detail))


def connect(url: str, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as err:
        raise BackupError(say("error", detail=str(err).strip())) from err


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per table of the public schema (a hypertable counts all its chunks)."""
    tables = [name for (name,) in conn.execute(USER_TABLES)]
    return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
            for t in tables}


def backup(url: str, out: Path, pg_bin: str | None) -> dict[str, int]:
    """pg_dump into out (owner-only, atomic). The row counts come from the very snapshot
    pg_dump copies (--snapshot), so they describe the file exactly."""
    pg_dump = tool("pg_dump", pg_bin)
    dbname, env = without_password(url)
    temporary = temporary_next_to(out)
    try:
        with connect(url) as conn:  # one transaction, open while pg_dump runs
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            (snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone()  # type: ignore[misc]
            counts = row_counts(conn)
            with temporary.open("wb") as file:
                run_tool([pg_dump, "-Fc", f"--snapshot={snapshot}", f"--dbname={dbname}"],
                         env, stdout=file)
                os.fsync(file.fileno())
        temporary.replace(out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return counts


def restore(file: Path, url: str, pg_bin: str | None) -> dict[str, int]:
    pg_restore = tool("pg_restore", pg_bin)
    dbname, env = without_password(url)
    with connect(url, autocommit=True) as conn:
        tables = conn.execute(USER_TABLES).fetchall()
        if tables:
            raise BackupError(say("restore_pg_not_empty", target=conn.info.dbname,
                                     tables=len(tables)))
        with restoring(conn), file.open("rb") as dump:
            # One transaction: a failed restore leaves the database empty, not half full.
            run_tool([pg_restore, "--exit-on-error", "--single-transaction",
                      f"--dbname={dbname}"], env, stdin=dump)
        return row_counts(conn)


@contextmanager
def restoring(conn: psycopg.Connection) -> Iterator[None]:
    """TimescaleDB's restore mode (its background jobs paused), always switched off after."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("SELECT timescaledb_pre_restore()")
    except psycopg.errors.InsufficientPrivilege as err:
        raise BackupError(say("restore_needs_superuser", detail=str(err).strip())) from err
    try:
        yield
    finally:
        conn.execute("SELECT timescaledb_post_restore()")
