"""Backups and restores on real databases, and the data folder kept private.

SQLite: an online copy while a writer keeps inserting, restored into an empty file.
TimescaleDB: pg_dump/pg_restore of the test bed's own PostgreSQL 17 (the host's client
may be older), restored into an empty database with its hypertables, then written to.
Every restore is compared table by table: row counts and a checksum of the ordered rows.
"""

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from collector import registry
from collector.backup_files import rows_report
from collector.serve import Server
from collector.settings import Settings
from collector.storage import Batch, Storage
from machikit import cli, contract, credentials
from machikit.testbed.micropython import elf_interpreter, library_dirs
from machikit.texts import say
from tests.collector.helpers import (
    Publisher,
    forget_session,
    free_port,
    fresh_database,
    unique_town,
    wait_until,
)
from tests.collector.stacks import migrated
from tests.collector.test_api import NOW, TOWN, seed
from tests.conftest import SERVICES, need

PG_BIN = "usr/lib/postgresql/17/bin"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of folder and of everything in it, by relative name."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


def serve_once(data_dir: Path) -> dict[str, int]:
    """A `machikit serve` start with the embedded broker and SQLite (web part off),
    the broker files written as `machikit device` does, then a stop."""
    server = Server(Settings(data_dir=data_dir, embedded_mqtt_port=free_port(),
                             web={"enabled": False}))
    server.start()
    try:
        assert server.storage is not None
        server.storage.add_device("t", "bus-01", "bus")
        registry.write_embedded_broker_files(server.storage, data_dir)
        snapshot = modes(data_dir)  # while running: the -wal and -shm files exist
    finally:
        server.stop()
    assert {"machikit.db-wal", "machikit.db-shm", "broker/acl"} <= snapshot.keys()
    return snapshot


def test_serve_creates_private_folders_and_files_under_umask_022(tmp_path: Path) -> None:
    with umask(0o022):
        created = serve_once(tmp_path / "data")
    expected = {"machikit.db", "machikit.db-wal", "machikit.db-shm", "broker",
                "broker/passwd", "broker/acl", "broker/machikit-collector.secret"}
    assert expected <= created.keys()
    folders = {".", "broker"}
    loose = {name: f"{mode:o}" for name, mode in created.items()
             if mode != (0o700 if name in folders else 0o600)}
    assert loose == {}


def test_loose_modes_left_from_before_are_tightened_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "data"
    with umask(0o022):
        serve_once(data_dir)
    for path in (data_dir, data_dir / "broker"):
        path.chmod(0o755)
    for name in ("machikit.db", "broker/passwd", "broker/acl", "broker/machikit-collector.secret"):
        (data_dir / name).chmod(0o644)
    with umask(0o022), caplog.at_level(logging.WARNING, logger="machikit.private"):
        again = serve_once(data_dir)
    assert {name: f"{mode:o}" for name, mode in again.items() if mode & 0o077} == {}
    told = caplog.text
    for name in ("machikit.db", "broker/passwd", "broker/acl", "broker/machikit-collector.secret"):
        assert say("private_tightened", path=data_dir / name, old="644", new="600") in told
    assert say("private_tightened", path=data_dir, old="755", new="700") in told


# --- real-looking data, and how tables are compared ------------------------------------


def fill(storage: Storage) -> dict[str, int]:
    """test_api's town (vehicles, gauges, a printer buzzer) plus what seed() leaves out:
    a device's broker login (a password hash), status reports, boots and a quarantined
    message, so every table has rows."""
    ids = seed(storage)
    storage.set_credentials(TOWN, "bus-01", f"{TOWN}.bus-01",
                            credentials.hash_password("bus-password"))
    batch = Batch()
    for boot in (1, 2):
        batch.add("device_status", (NOW - boot * 60_000, ids["bus-01"], NOW, "online", "1.2.0",
                                    boot, 5000, -61, 0, 81_000, None, "power_on", 0, True, 9,
                                    0.9))
    batch.add("quarantine", (NOW, f"mk/v1/{TOWN}/ghost/reading", b"\x00\xffnot json",
                             "bad_json", "Expecting value"))
    storage.write(batch)
    storage.boot_starts({(ids["bus-01"], 1): NOW - 3_600_000})
    return ids


def sqlite_tables(path: Path) -> dict[str, tuple[int, str]]:
    """Every table: (rows, sha256 of its rows in order)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                          " AND name NOT LIKE 'sqlite_%'")]
        found = {}
        for name in names:
            rows = sorted(repr(row) for row in db.execute(f'SELECT * FROM "{name}"'))
            found[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return found


def pg_tables(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        names = [n for (n,) in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        return {name: conn.execute(  # type: ignore[misc]
            f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
            f' FROM "{name}" t').fetchone() for name in names}


def hypertables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return sorted(n for (n,) in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"))


def machikit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real command line, in this process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def counts_of(tables: dict[str, tuple[int, str]]) -> dict[str, int]:
    return {name: rows for name, (rows, _) in sorted(tables.items())}


# --- SQLite --------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A filled SQLite database, configured as `machikit serve` would find it."""
    path = tmp_path / "data" / "machikit.db"
    with migrated(f"sqlite:///{path}") as storage:
        fill(storage)
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    return path


def restore_into(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", url)


def test_sqlite_backup_and_restore_keep_every_row(
        sqlite_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = sqlite_tables(sqlite_db)
    assert all(rows for rows, _ in before.values()), before  # every table has data
    code, out, _ = machikit(capsys, "backup")
    assert code == 0
    (file,) = tmp_path.glob("machikit-backup-*.db")  # the dated default name, here
    assert time.strftime("%Y%m%d") in file.name
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert say("backup_done", path=file.resolve(), size="").split("（")[0] in out
    assert rows_report(counts_of(before)) in out
    assert sqlite_tables(file) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert machikit(capsys, "backup", "--out", "nightly/")[0] == 0  # a new folder for them
    assert stat.S_IMODE((tmp_path / "nightly").stat().st_mode) == 0o700
    (nightly,) = (tmp_path / "nightly").iterdir()
    assert sqlite_tables(nightly) == before

    target = tmp_path / "elsewhere" / "machikit.db"
    restore_into(monkeypatch, f"sqlite:///{target}")
    code, out, err = machikit(capsys, "restore", str(file))
    assert (code, err) == (0, "")
    assert sqlite_tables(target) == before
    assert rows_report(counts_of(before)) in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with migrated(f"sqlite:///{target}") as storage:  # the collector can go on with it
        assert storage.find_devices({(TOWN, "bus-01")})
        assert storage.device_accounts(TOWN)[0].password_hash


def test_sqlite_backup_is_online_while_the_collector_writes(
        sqlite_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer keeps inserting (WAL mode, as under `serve`) during the whole backup:
    the backup holds a consistent moment, more than at the start, less than at the end."""
    stop, written = threading.Event(), [0]

    def writer() -> None:
        with migrated(f"sqlite:///{sqlite_db}") as storage:
            (device,) = storage.find_devices({(TOWN, "snow-01")}).values()
            while not stop.is_set():
                batch = Batch()
                for _ in range(50):
                    written[0] += 1
                    batch.add("readings", (NOW + written[0], device.id, 10_000 + written[0],
                                           NOW, True, "snow_depth", 40.0, "cm", None))
                storage.write(batch)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_until(lambda: written[0] > 2_000, 30)
        at_start = written[0]
        code, out, _ = machikit(capsys, "backup", "--out", str(tmp_path / "online.db"))
        assert wait_until(lambda: written[0] > at_start + 2_000 or not thread.is_alive(), 30)
    finally:
        stop.set()
        thread.join()
    assert code == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "online.db")) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # A snapshot, not a torn copy: the written rows form one unbroken run 1..n.
        kept = [seq for (seq,) in copy.execute(
            "SELECT seq - 10000 FROM readings WHERE seq > 10000 ORDER BY seq")]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert at_start - 50 <= len(kept) < written[0]  # a batch of 50 may still be uncommitted
    assert kept == list(range(1, len(kept) + 1))
    assert re.search(rf"^ +readings +{len(kept) + 51}$", out, re.M)  # and seed()'s 51
    assert not (tmp_path / "online.db-wal").exists()


def test_sqlite_restore_refuses_data_unless_forced_and_keeps_the_old_file(
        sqlite_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert machikit(capsys, "backup", "--out", str(tmp_path / "b.db"))[0] == 0
    with migrated(f"sqlite:///{sqlite_db}") as storage:  # a day's new data, then trouble
        storage.add_device("other", "bus-09", "bus")
    changed = sqlite_tables(sqlite_db)

    code, _, err = machikit(capsys, "restore", str(tmp_path / "b.db"))
    rows = sum(counts_of(changed).values()) - changed["schema_migrations"][0]
    assert (code, err.strip()) == (1, say("restore_not_empty", target=sqlite_db, rows=rows))
    assert sqlite_tables(sqlite_db) == changed  # untouched

    code, out, err = machikit(capsys, "restore", "--force", str(tmp_path / "b.db"))
    assert (code, err) == (0, "")
    assert sqlite_tables(sqlite_db) == sqlite_tables(tmp_path / "b.db")
    (kept,) = sqlite_db.parent.glob("machikit.db.before-restore-*")
    assert say("restore_kept_old", path=kept) in out
    assert sqlite_tables(kept) == changed


def test_sqlite_restore_refuses_a_database_serve_is_using(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    server = Server(Settings(data_dir=data_dir, embedded_mqtt_port=free_port(),
                             web={"enabled": False}))
    server.start()
    database = data_dir / "machikit.db"
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", f"sqlite:///{database}")
    try:
        assert machikit(capsys, "backup", "--out", str(tmp_path / "b.db"))[0] == 0
        before = sqlite_tables(database)
        code, _, err = machikit(capsys, "restore", "--force", str(tmp_path / "b.db"))
        assert (code, err.strip()) == (1, say("restore_in_use", path=database))
        assert sqlite_tables(database) == before
        assert list(data_dir.glob("*.tmp")) == []
    finally:
        server.stop()
    # Stopped, it has only its schema (no devices, no data): no --force needed.
    code, _, err = machikit(capsys, "restore", str(tmp_path / "b.db"))
    assert (code, err) == (0, "")


def test_restore_refuses_a_damaged_or_foreign_file(
        sqlite_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a backup", encoding="utf-8")
    code, _, err = machikit(capsys, "restore", str(notes))
    assert (code, err.strip()) == (1, say("backup_wrong_kind", file=notes, engine="SQLite"))
    missing = tmp_path / "missing.db"
    code, _, err = machikit(capsys, "restore", str(missing))
    assert (code, err.strip()) == (1, say("backup_not_found", file=missing))
    torn = tmp_path / "torn.db"
    assert machikit(capsys, "backup", "--out", str(torn))[0] == 0
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    code, _, err = machikit(capsys, "restore", "--force", str(torn))
    assert code == 1 and err.startswith(say("backup_bad_file", file=torn, detail="")[:20])


# --- TimescaleDB ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pg_dump and pg_restore of the test bed's PostgreSQL 17 (the host's client may be
    older, and pg_dump refuses a newer server), run by the root's own loader as
    `machikit dev` runs MicroPython: what --pg-bin names in production is a folder of
    the server's version."""
    own = SERVICES.get("MACHIKIT_TEST_PG_BIN")  # services of one's own: their tools' folder
    if own:
        return Path(own)
    root = Path(need("MACHIKIT_TESTBED_DIR")) / "root"
    folder = tmp_path_factory.mktemp("pg-bin")
    for name in ("pg_dump", "pg_restore"):
        binary = root / PG_BIN / name
        loader = root / elf_interpreter(binary).lstrip("/")
        paths = ":".join(str(d) for d in library_dirs(root))
        wrapper = folder / name
        wrapper.write_text(f'#!/bin/sh\nexec "{loader}" --inhibit-cache --library-path'
                           f' "{paths}" "{binary}" "$@"\n', encoding="utf-8", newline="\n")
        wrapper.chmod(0o755)
    return folder


def as_admin(url: str) -> str:
    """The same database as the test bed's superuser (TimescaleDB's restore needs one)."""
    admin = urlsplit(need("MACHIKIT_TEST_ADMIN_DATABASE_URL"))
    return urlunsplit(admin._replace(path=urlsplit(url).path))


@pytest.fixture(scope="module")
def pg_source(database_url: str) -> Iterator[str]:
    with fresh_database(database_url) as url:
        with migrated(url) as storage:
            fill(storage)
        yield url


def test_timescaledb_backup_and_restore_into_an_empty_database(
        pg_source: str, database_url: str, pg_bin: Path, mqtt_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before = pg_tables(pg_source)
    assert all(rows for rows, _ in before.values()), before
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", pg_source)
    monkeypatch.chdir(tmp_path)
    code, out, err = machikit(capsys, "backup", "--pg-bin", str(pg_bin))
    assert (code, err) == (0, "")
    (file,) = tmp_path.glob("machikit-backup-*.dump")
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert rows_report(counts_of(before)) in out

    with fresh_database(database_url) as empty:
        monkeypatch.setenv("MACHIKIT_DATABASE_URL", as_admin(empty))
        code, out, err = machikit(capsys, "restore", "--pg-bin", str(pg_bin), str(file))
        assert (code, err) == (0, "")
        assert pg_tables(empty) == before  # rows and checksums of every table
        assert rows_report(counts_of(before)) in out
        assert hypertables(empty) == hypertables(pg_source) == sorted(
            ["positions", "readings", "events", "device_status", "quarantine"])
        collector_writes_into(empty, mqtt_url)


def collector_writes_into(url: str, mqtt_url: str) -> None:
    """A real collector (Mosquitto, its own login) stores a new reading after the restore."""
    town = unique_town()
    with migrated(url) as storage:
        assert storage.migrate() == 5  # nothing to redo: the restored schema is current
        device = storage.add_device(town, "snow-01", "snow_gauge")
    server = Server(Settings(database_url=url, mqtt_url=mqtt_url, town=town,
                             mqtt_client_id=f"collector-{town}", web={"enabled": False}))
    server.start()
    publisher = Publisher(mqtt_url, f"{town}-snow", "5")
    try:
        publisher.send_msg(town, "snow-01", contract.READING,
                           contract.reading(1, NOW, "snow_depth", 12.5, "cm"))
        assert publisher.all_acknowledged(10)
        with psycopg.connect(url) as conn:
            assert wait_until(lambda: conn.execute(
                "SELECT count(*) FROM readings WHERE device_id = %s", (device.id,)
            ).fetchone() == (1,), 15)
    finally:
        publisher.close()
        server.stop()
        forget_session(mqtt_url, publisher.client_id)
        forget_session(mqtt_url, f"collector-{town}")


def test_timescaledb_restore_refuses_a_database_that_is_not_empty(
        pg_source: str, pg_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", pg_source)
    assert machikit(capsys, "backup", "--pg-bin", str(pg_bin),
                    "--out", str(tmp_path / "b.dump"))[0] == 0
    before = pg_tables(pg_source)
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", as_admin(pg_source))
    code, _, err = machikit(capsys, "restore", "--pg-bin", str(pg_bin), str(tmp_path / "b.dump"))
    name = urlsplit(pg_source).path.lstrip("/")
    assert (code, err.strip()) == (1, say("restore_pg_not_empty", target=name,
                                          tables=len(before)))
    assert pg_tables(pg_source) == before


def test_timescaledb_restore_says_it_needs_a_superuser(
        pg_source: str, database_url: str, pg_bin: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", pg_source)
    assert machikit(capsys, "backup", "--pg-bin", str(pg_bin),
                    "--out", str(tmp_path / "b.dump"))[0] == 0
    with fresh_database(database_url) as empty:
        monkeypatch.setenv("MACHIKIT_DATABASE_URL", empty)  # the collector's own login
        code, _, err = machikit(capsys, "restore", "--pg-bin", str(pg_bin),
                                str(tmp_path / "b.dump"))
        assert code == 1
        assert err.startswith(say("restore_needs_superuser", detail="").split(":")[0])
        assert pg_tables(empty) == {}


def test_missing_pg_tools_are_named(
        pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MACHIKIT_DATABASE_URL", pg_source)
    monkeypatch.setenv("MACHIKIT_PG_BIN", str(tmp_path))  # a folder without the tools
    code, _, err = machikit(capsys, "backup", "--out", str(tmp_path / "b.dump"))
    assert (code, err.strip()) == (1, say("pg_tool_missing", tool="pg_dump"))
    assert list(tmp_path.iterdir()) == []  # no half-written file left behind
    (tmp_path / "b.dump").write_bytes(b"PGDMP")
    code, _, err = machikit(capsys, "restore", str(tmp_path / "b.dump"))
    assert (code, err.strip()) == (1, say("pg_tool_missing", tool="pg_restore"))
