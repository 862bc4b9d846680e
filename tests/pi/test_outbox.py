"""pi/outbox.py: numbering, order, the capacity rule, and surviving kill -9.

No services needed. The benchmark at the end prints puts/s (run with -s to see it, or
`python -m tests.pi.test_outbox`).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from machikit import contract
from pi.outbox import Outbox
from tests.conftest import REPO

T0 = 1795650000000


def pos(i: int) -> dict:
    return {"t": T0 + i * 1000, "lat": 42.3 + i / 1e5, "lon": 140.9}


def test_put_numbers_stores_and_returns_the_full_message(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    first = box.put("pos", pos(0))
    assert first == {"v": 1, "seq": 0, "t": T0, "lat": 42.3, "lon": 140.9}
    box.put("reading", {"t": T0, "sensor": "snow_depth", "value": 35.2, "unit": "cm"})
    box.put("event", {"t": T0, "event": "door_open"})
    assert box.count() == 3 and box.next_seq == 3 and box.dropped == 0
    # Stored already encoded: what is sent is exactly what was stored.
    assert box.oldest(1) == [(0, "pos", contract.encode(first))]
    assert [(s, ch) for s, ch, _ in box.oldest(10)] == [(0, "pos"), (1, "reading"), (2, "event")]
    assert box.newest() is not None and box.newest()[:2] == (2, "event")  # type: ignore[index]
    box.remove([0, 2, 99])  # 99: unknown, ignored
    assert box.count() == 1 and [s for s, _, _ in box.oldest(10)] == [1]
    box.remove([1])
    assert box.newest() is None and box.oldest(5) == [] and box.count() == 0
    assert box.put("pos", pos(1))["seq"] == 3  # numbers never go back
    box.close()


@pytest.mark.parametrize("channel, fields, error", [
    ("status", {"state": "online"}, ValueError),  # not a data channel
    ("pos", {"seq": 5, "t": T0, "lat": 1.0, "lon": 2.0}, ValueError),  # the outbox numbers
    ("pos", {"t": T0, "lat": 91.0, "lon": 2.0}, contract.ContractError),
    ("reading", {"t": T0, "sensor": "x", "value": 1, "unit": "furlong"}, contract.ContractError),
    ("event", {"t": T0, "event": "x", "text": "あ" * 2000}, contract.ContractError),  # > 4096 B
])
def test_a_bad_message_raises_and_uses_no_seq(tmp_path: Path, channel: str, fields: dict,
                                              error: type) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(error):
        box.put(channel, fields)
    assert box.next_seq == 0 and box.count() == 0
    assert box.put("pos", pos(0))["seq"] == 0
    box.close()


def test_full_outbox_keeps_the_newest_and_counts_the_dropped(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, capacity=100)
    for i in range(150):
        box.put("pos", pos(i))
    assert box.count() == 100 and box.dropped == 50
    assert [s for s, _, _ in box.oldest(200)] == list(range(50, 150))
    box.close()
    again = Outbox(path, capacity=100)  # persisted
    assert (again.count(), again.dropped, again.next_seq) == (100, 50, 150)
    again.put("pos", pos(150))
    assert again.dropped == 51 and again.oldest(1)[0][0] == 51
    again.close()


# --- kill -9 ----------------------------------------------------------------------------

WRITER = r"""
import sys
from pi.outbox import Outbox
box = Outbox(sys.argv[1], capacity=int(sys.argv[2]))
i = 0
while True:
    msg = box.put("pos", {"t": 1795650000000 + i, "lat": 42.0, "lon": 140.0})
    sys.stdout.write("put %d\n" % msg["seq"])  # one write: a line is whole or missing
    sys.stdout.flush()
    i += 1
    if i % 7 == 0:  # like the forwarder: deliver (remove) a few of the oldest
        seqs = [s for s, _, _ in box.oldest(3)]
        sys.stdout.write("removing %s\n" % " ".join(map(str, seqs)))
        sys.stdout.flush()
        box.remove(seqs)
"""


def _run_and_kill(path: Path, seconds: float, capacity: int) -> list[list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(capacity)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    # Only whole lines: the kill may cut the last one.
    return [line.split() for line in out.split("\n")[:-1]]


def _rows(path: Path) -> set[int]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {row[0] for row in db.execute("SELECT seq FROM messages")}


@pytest.mark.parametrize("seconds", [0.35, 0.8, 1.3, 1.7, 2.4])
def test_kill_9_at_any_moment_loses_nothing_and_repeats_no_seq(tmp_path: Path,
                                                               seconds: float) -> None:
    path = tmp_path / "o.sqlite"
    given: list[int] = []  # every seq put() returned, across all runs
    removed: set[int] = set()  # every seq the writers were removing (delivered)
    unprinted: set[int] = set()  # rows committed just before a kill, before the print
    for _ in range(2):  # killed twice: the second run continues the first one's numbers
        lines = _run_and_kill(path, seconds, capacity=10**6)
        puts = [int(parts[1]) for parts in lines if parts[0] == "put"]
        assert puts, "the writer did not get going"
        given += puts
        removed |= {int(s) for parts in lines if parts[0] == "removing" for s in parts[1:]}
        rows = _rows(path)
        # A put that returned is on disk (or was delivered); at most one more row may be
        # there, committed just before the kill but not yet printed.
        assert set(given) - removed <= rows
        extra = rows - set(given) - unprinted
        assert len(extra) <= 1 and all(s > max(given) for s in extra)
        unprinted |= extra
        box = Outbox(path)
        assert box.count() == len(rows)  # the counter matches the rows
        assert box.next_seq > max(rows | set(given))
        box.close()
    assert len(given) == len(set(given)) and not unprinted & set(given), "a seq repeated"
    assert given == sorted(given)


# --- benchmark --------------------------------------------------------------------------

def measure_puts(path: Path, n: int) -> float:
    box = Outbox(path)
    start = time.perf_counter()
    for i in range(n):
        box.put("pos", pos(i))
    rate = n / (time.perf_counter() - start)
    box.close()
    return rate


@pytest.mark.slow
def test_put_rate(tmp_path: Path) -> None:
    rate = measure_puts(tmp_path / "bench.sqlite", 10_000)
    print(f"\noutbox: 10000 puts, WAL + synchronous=FULL: {rate:.0f} puts/s")
    assert rate > 50  # a GPS fix a second needs 1; a Pi 4 with an SD card manages hundreds


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for n in (1_000, 10_000):
            print(f"{n} puts: {measure_puts(Path(folder) / f'b{n}.sqlite', n):.0f} puts/s")
