"""Backups and restores on real databases, and the data folder kept private.

SQLite: an online copy while a writer keeps inserting, restored into an empty file.
TimescaleDB: pg_dump/pg_restore of the test bed's own PostgreSQL 17 (the host's client
may be older), restored into an empty database with its hypertables, then written to.
Every restore is compared table by table: row counts and a checksum of the ordered rows.
"""

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import registry
from collector.serve import Server
from collector.settings import Settings
from machikit.texts import say
from tests.collector.helpers import free_port


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
