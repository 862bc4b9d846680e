"""The Raspberry Pi's store-and-forward outbox: every message is on disk before it is sent.

    box = Outbox("/var/lib/machikit/outbox.sqlite")
    msg = box.put("pos", {"t": 1795650000000, "lat": 42.31, "lon": 140.97})  # {"v":1,"seq":0,...}
    ... pi.forward.Forwarder sends what waits, and calls box.remove(seqs) after the PUBACK.

Why SQLite (stdlib) in WAL mode with synchronous=FULL: a bus engine or a snow gauge's
battery can cut the power at any moment. Each put() is one transaction that is on the SD
card when put() returns; after a power cut the database holds either the whole put (row
AND the raised seq counter) or none of it. So a seq is never given out twice, and a message
the job was told is stored is not lost. (This needs storage that honours fsync; SD cards
from the Raspberry Pi's recommended list do.)

The same process may put() from one thread and pump the Forwarder from another: one
connection, guarded by a lock. Several processes may share the file too (SQLite locks it);
the counters live in the database, not in memory, so they stay right either way.

Full outbox: the OLDEST unsent message is deleted to make room, and counted in `dropped`
(kept in the database, never goes down), which the device reports in its status message.
Why the oldest: a live map wants the newest positions; old ones matter least.
"""

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from machikit import contract
from machikit.texts import say

log = logging.getLogger("machikit.pi.outbox")

Row = tuple[int, str, bytes]  # (seq, channel, payload as sent)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('next_seq', 0), ('dropped', 0), ('count', 0);
"""
_DROP_LOG_EVERY = 1000  # a full outbox drops one message per put: do not flood the journal


class Outbox:
    """Messages waiting for the broker, numbered, on disk. See the module docstring."""

    def __init__(self, path: Path | str, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = Path(path)
        self.capacity = capacity
        self._lock = threading.Lock()
        self._warned = False  # said once in this process that the outbox is full
        # isolation_level=None: we write BEGIN/COMMIT ourselves, so each transaction is
        # exactly what we mean (the sqlite3 module would otherwise open them implicitly).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._create()
        self._repair_count()

    # --- writing ------------------------------------------------------------------------

    def put(self, channel: str, fields: dict) -> dict:
        """Give `fields` (a contract message WITHOUT 'v' and 'seq', e.g. {"t":..., "lat":...,
        "lon":...}) the next seq, store it, and return the full message {"v":1,"seq":n,...}.

        The seq counter is raised in the same transaction as the row is written: a seq is
        never given out twice, not even across a kill -9 or a power cut. A message that breaks
        the contract raises contract.ContractError (a bug in the job) and uses no seq."""
        if channel not in contract.DATA_CHANNELS:
            raise ValueError(f"channel must be one of {contract.DATA_CHANNELS}, not {channel!r}")
        if "v" in fields or "seq" in fields:
            raise ValueError("fields must not contain 'v' or 'seq': the outbox adds them")
        with self._transaction() as db:
            seq = self._counter(db, "next_seq")
            msg = {"v": contract.VERSION, "seq": seq, **fields}
            payload = contract.encode(msg)
            contract.decode(channel, payload)  # raises (and rolls back) on a bad message
            db.execute("INSERT INTO messages VALUES (?, ?, ?)", (seq, channel, payload))
            db.execute("UPDATE counters SET value = ? WHERE name = 'next_seq'", (seq + 1,))
            self._add(db, "count", 1)
            dropped = self._make_room(db)
        if dropped:
            self._log_dropped(dropped)
        return msg

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker acknowledged. Unknown seqs are ignored (a full outbox
        may have dropped a message while it was on its way)."""
        rows = [(int(seq),) for seq in seqs]
        if not rows:
            return
        with self._transaction() as db:
            gone = db.executemany("DELETE FROM messages WHERE seq = ?", rows).rowcount
            self._add(db, "count", -gone)

    # --- reading ------------------------------------------------------------------------

    def newest(self) -> Row | None:
        """(seq, channel, payload) of the newest unsent message, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, channel, payload FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1], bytes(row[2])) if row else None

    def oldest(self, n: int) -> list[Row]:
        """Up to n of the oldest unsent messages, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, channel, payload FROM messages ORDER BY seq LIMIT ?", (n,)).fetchall()
        return [(seq, channel, bytes(payload)) for seq, channel, payload in rows]

    def count(self) -> int:
        """Messages waiting (the `buffered` of the status message)."""
        return self._read_counter("count")

    @property
    def dropped(self) -> int:
        """Messages deleted unsent because the outbox was full, since it was created."""
        return self._read_counter("dropped")

    @property
    def next_seq(self) -> int:
        return self._read_counter("next_seq")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- inside -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock at once: reading the seq counter and raising
        # it can never interleave with another writer (thread or process).
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _create(self) -> None:
        # executescript() would COMMIT on its own; the statements are idempotent, so a
        # crash between them is harmless (the next open runs them again).
        with self._lock:
            self._db.executescript(_SCHEMA)

    def _repair_count(self) -> None:
        # `count` is kept in the same transactions as the rows, so it is always right; this
        # only matters for a file changed by hand (or an older version): rows are the truth.
        with self._transaction() as db:
            rows = db.execute("SELECT count(*) FROM messages").fetchone()[0]
            db.execute("UPDATE counters SET value = ? WHERE name = 'count'", (rows,))

    def _make_room(self, db: sqlite3.Connection) -> int:
        over = self._counter(db, "count") - self.capacity
        if over <= 0:
            return 0
        gone = db.execute(
            "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)",
            (over,)).rowcount
        self._add(db, "count", -gone)
        self._add(db, "dropped", gone)
        return self._counter(db, "dropped")

    def _log_dropped(self, dropped: int) -> None:
        if not self._warned or dropped % _DROP_LOG_EVERY == 0:
            self._warned = True
            log.warning(say("pi_outbox_full", capacity=self.capacity, dropped=dropped))

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        return int(db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    @staticmethod
    def _add(db: sqlite3.Connection, name: str, delta: int) -> None:
        db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))

    def _read_counter(self, name: str) -> int:
        with self._lock:
            return self._counter(self._db, name)
