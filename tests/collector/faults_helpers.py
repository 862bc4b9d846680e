"""Helpers for the fault suite (test_faults*.py): exact counts, database pauses, kicks.

Every fault test ends the same way: the rows of the test's town are counted, no
(device, seq) may appear twice, and the collector's own counters must agree.
"""

import contextlib
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg

from machikit import contract
from tests.collector.helpers import Publisher, wait_until


@dataclass
class Tally:
    """What one fault test injected, sent and found afterwards (for the module summary)."""

    fault: str
    sent: int
    stored: int
    duplicates: int  # redeliveries the collector recognised and stored once
    quarantined: int = 0


SUMMARY: list[Tally] = []


# --- exact counts ---------------------------------------------------------------------

def town_rows(db_url: str, town: str, table: str = "positions") -> tuple[int, int]:
    """Rows of `town` in `table`, and how many (device, seq) pairs are there more than once
    (0 for device_status, which has no seq)."""
    total = (f"SELECT count(*) FROM {table} t JOIN devices d ON d.id = t.device_id"
             " WHERE d.town = {mark}")
    twice = (f"SELECT count(*) FROM (SELECT t.device_id, t.seq FROM {table} t"
             " JOIN devices d ON d.id = t.device_id WHERE d.town = {mark}"
             " GROUP BY t.device_id, t.seq HAVING count(*) > 1) AS doubled")
    if table == "device_status":
        twice = "SELECT count(*) FROM devices WHERE town = {mark} AND false"
    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
            return (db.execute(total.format(mark="?"), (town,)).fetchone()[0],
                    db.execute(twice.format(mark="?"), (town,)).fetchone()[0])
    with psycopg.connect(db_url, autocommit=True) as conn:
        return (_one(conn, total.format(mark="%s"), town),
                _one(conn, twice.format(mark="%s"), town))


def town_seqs(db_url: str, town: str) -> set[int]:
    """The seqs stored in positions for `town`."""
    query = ("SELECT t.seq FROM positions t JOIN devices d ON d.id = t.device_id"
             " WHERE d.town = {mark}")
    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
            return {s for (s,) in db.execute(query.format(mark="?"), (town,))}
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {s for (s,) in conn.execute(query.format(mark="%s"), (town,))}


def town_stored(db_url: str, town: str) -> int:
    """Every row the collector stored for `town` (what its `stored` counter counts)."""
    return sum(town_rows(db_url, town, table)[0]
               for table in ("positions", "readings", "events", "device_status"))


def _one(conn: psycopg.Connection, query: str, town: str) -> int:
    row = conn.execute(query, (town,)).fetchone()
    assert row is not None
    return int(row[0])


def quarantined(db_url: str, reason: str | None = None, topic_part: str = "") -> int:
    """Quarantine rows (of one reason), whose topic contains `topic_part`."""
    where = "topic LIKE {mark} AND ({mark} IS NULL OR reason = {mark})"
    args = (f"%{topic_part}%", reason, reason)
    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
            query = "SELECT count(*) FROM quarantine WHERE " + where.format(mark="?")
            return int(db.execute(query, args).fetchone()[0])
    with psycopg.connect(db_url, autocommit=True) as conn:
        query = "SELECT count(*) FROM quarantine WHERE " + where.format(mark="%s::text")
        row = conn.execute(query, args).fetchone()
        assert row is not None
        return int(row[0])


def settle(read: Callable[[], object], expected: object, timeout: float = 60.0) -> object:
    """Wait until read() == expected, then a little longer: a late extra row must show."""
    wait_until(lambda: read() == expected, timeout=timeout, every=0.2)
    time.sleep(1.0)
    return read()


# --- device-like sending -------------------------------------------------------------

class Sender:
    """Positions of one device at `rate` per second from a background thread, seq from
    `first`; stop() ends it. `sent` counts what was handed to paho (QoS 1, kept and
    resent by paho until the broker's PUBACK)."""

    def __init__(self, publisher: Publisher, town: str, rate: float, first: int = 0,
                 device: str = "bus-01") -> None:
        self.publisher, self.town, self.rate, self.device = publisher, town, rate, device
        self.next_seq = first
        self.first = first
        self.sent_at: list[int] = []  # ms when each seq was handed to paho
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def sent(self) -> int:
        return self.next_seq - self.first

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            seq = self.next_seq
            self.sent_at.append(time.time_ns() // 1_000_000)
            self.publisher.send_msg(self.town, self.device, "pos", contract.position(
                seq, self.sent_at[-1], 42.3 + seq * 1e-6, 140.9, speed=8.0))
            self.next_seq += 1
            self._stop.wait(max(0.0, start + self.sent / self.rate - time.monotonic()))

    def __enter__(self) -> "Sender":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def send_positions(publisher: Publisher, town: str, seqs: range, device: str = "bus-01",
                   t0: int | None = None) -> None:
    t0 = time.time_ns() // 1_000_000 if t0 is None else t0
    for seq in seqs:
        publisher.send_msg(town, device, "pos",
                           contract.position(seq, t0 + seq, 42.3, 140.9, speed=8.0))


# --- PostgreSQL: a write in flight, an outage of one database -------------------------

def database_name(db_url: str) -> str:
    return urlsplit(db_url).path.lstrip("/")


@contextlib.contextmanager
def positions_locked(db_url: str) -> Iterator[psycopg.Connection]:
    """Hold a lock that makes every INSERT into positions wait (reads still work), so a
    collector's batch stays in flight, uncommitted, for as long as the test wants."""
    conn = psycopg.connect(db_url)
    try:
        conn.execute("LOCK TABLE positions IN EXCLUSIVE MODE")
        yield conn
    finally:
        if not conn.closed:
            conn.rollback()
            conn.close()


def waiting_writer(db_url: str, timeout: float = 20.0) -> int:
    """The server process id of the connection that waits for the lock on positions."""
    found: list[int] = []

    def look() -> bool:
        with psycopg.connect(db_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%%INSERT INTO%%positions%%'"
            ).fetchall()
        found[:] = [pid for (pid,) in rows]
        return len(found) == 1

    assert wait_until(look, timeout=timeout, every=0.05), f"no single waiting writer: {found}"
    return found[0]


def terminate_backend(db_url: str, pid: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


@contextlib.contextmanager
def database_outage(server_url: str, db_url: str) -> Iterator[None]:
    """This test's database refuses every connection, and its open ones are cut: to the
    collector it is a database server that is down. The shared server itself keeps
    running, so other test runs on it are not disturbed. server_url: another database
    on the same server, owned by the same user."""
    name = database_name(db_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s AND pid <> pg_backend_pid()"
                     " AND usename = current_user", (name,))  # not TimescaleDB's workers
    try:
        yield
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


# --- MQTT: cutting a client's TCP connection --------------------------------------------

def kick(client: mqtt.Client) -> None:
    """Cut a paho client's TCP connection from outside, as a NAT timeout or a broken
    Wi-Fi link would (`ss -K` destroys the socket in the kernel)."""
    sock = client.socket()
    assert isinstance(sock, socket.socket), "the client is not connected"
    port = sock.getsockname()[1]
    subprocess.run(["ss", "-K", "dst", "127.0.0.1", "sport", "=", f":{port}"],
                   check=True, capture_output=True, encoding="utf-8")


# --- a small, fillable disk --------------------------------------------------------------

@contextlib.contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (needs root), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True, capture_output=True, encoding="utf-8")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True,
                       encoding="utf-8")


def fill(disk: Path) -> Path:
    """Write a file until the disk has no space left; remove it to free the space."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:  # the last few blocks
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    os.close(fd)
    return filler
