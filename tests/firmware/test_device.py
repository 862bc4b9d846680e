"""The device loop (firmware/lib/mk_device.py) on the real MicroPython unix port, against the
test bed's real Mosquitto and the real collector (TimescaleDB): nothing a device measures is
lost, not in a broker outage and not in a power cut with a backlog in flash.

The runner (device_runner.py, itself compiled in the process) runs as a subprocess with
`-X heapsize=96k` (HEAP), with MICROPYPATH = a board's /lib: every module as .mpy from
mpy-cross, as a board gets it (conftest.board_mpy). The first test bounds what the loaded
modules and a running device keep.
"""

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from machikit import contract, testbed
from tests.collector.helpers import clear_retained, credentials, forget_session, unique_town, wait_until
from tests.collector.stacks import Stack, device_stack
from tests.conftest import REPO
from tests.firmware.process import MicroPythonProcess

pytestmark = pytest.mark.services

RUNNER = Path(__file__).with_name("device_runner.py")
HEAP = "96k"  # see the module docstring
DEVICE = "snow-01"


@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with device_stack(database_url, mqtt_url, DEVICE, "snow_gauge") as s:
        yield s


class Runner(MicroPythonProcess):
    """device_runner.py in a MicroPython process."""

    def __init__(self, micropython: str, board_dir: Path, mqtt_url: str, town: str,
                 flash: Path, count: int, interval_ms: int, hold: int = 0,
                 sync: bool = True, buffer_bytes: int = 65536) -> None:
        host, port, user, password = credentials(mqtt_url)
        args = [host, str(port), user, password, town, DEVICE, str(flash), str(count),
                str(interval_ms), str(hold), "1" if sync else "0", str(buffer_bytes)]
        super().__init__(micropython, HEAP, str(RUNNER), args, str(board_dir))

    def made(self) -> list[int]:
        return [line["seq"] for line in self.ops("made")]


def stored(stack: Stack, expected: int) -> list[dict]:
    """The device's readings once `expected` arrived, and a moment later (a duplicate
    would show up then), ordered by seq."""
    wait_until(lambda: stack.storage.counts()["readings"] >= expected, 20)
    time.sleep(0.7)
    rows = stack.storage.recent("readings", 10 * expected + 10)
    return sorted(rows, key=lambda r: r["seq"])


def assert_exactly_once(stack: Stack, rows: list[dict], *boots: list[int]) -> None:
    """Every produced seq stored once, nothing else; `boots`: the seqs each run produced."""
    made = [seq for boot in boots for seq in boot]
    seqs = [r["seq"] for r in rows]
    assert len(made) == len(set(made)), "a seq was given out twice"
    assert len(seqs) == len(set(seqs)), "a reading was stored twice"
    assert seqs == sorted(made), "stored seqs differ from the produced ones"
    assert stack.storage.counts()["quarantine"] == 0
    assert {r["device"] for r in rows} == {DEVICE}
    assert len(rows) == stack.storage.counts()["readings"]
    # The time of each reading comes from the device (stamped when measured, not when sent):
    # within one boot a later seq never has an earlier time, live or replayed in a batch.
    time_of = {r["seq"]: r["time"] for r in rows}
    for boot in boots:
        times = [time_of[seq] for seq in boot]
        assert times == sorted(times), times
    # Across a reboot the clock is set again, by NTP to whole seconds (here: time.time()
    # truncated by mk_clock.sync), so a new boot may start up to 1 s "earlier": seq, not
    # time, is the order of a device's messages.
    for before, after in itertools.pairwise(boots):
        assert time_of[after[0]] > time_of[before[-1]] - 1000


def controllable() -> None:
    """The outage tests stop and start the test bed's Mosquitto."""
    if not testbed.is_controllable():
        pytest.skip("needs the project's test bed, run as root (machikit dev services up)")


@pytest.mark.parametrize("sync", [True, False], ids=["synced", "unsynced"])
def test_boot_online_and_ten_readings_stored_once(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
    sync: bool,
) -> None:
    runner = Runner(micropython, board_mpy, mqtt_url, stack.town, tmp_path / "flash",
                    count=10, interval_ms=50, sync=sync)
    try:
        start = runner.wait_for("start")
        assert start == {"op": "start", "boot": 1, "buffered": 0, "next_seq": 0}
        done = runner.wait_for("done")
        assert runner.proc.wait(10) == 0
    finally:
        runner.kill()
    # Normally all 10 go out live on one connection; on a machine starved of CPU a PUBACK
    # can miss the 2 s timeout, and then that reading takes the flash path instead. Either
    # way each is delivered exactly once (checked below), which is what matters.
    assert done["made"] == 10 and done["live"] + done["replayed"] == 10, done
    assert done["buffered_total"] == done["replayed"]
    # Measured (1.25 unix port, 64-bit, all .mpy): the device's modules keep 37 KB, a running
    # device 42 KB, with 50 KB of the 96 KB heap still free after a collection.
    assert done["heap"]["after"] < 64_000, done["heap"]
    rows = stored(stack, 10)
    assert_exactly_once(stack, rows, runner.made())
    assert [r["seq"] for r in rows] == list(range(10))
    assert {r["clock_synced"] for r in rows} == {sync}
    assert [r["value"] for r in rows] == [n / 10 for n in range(1, 11)]
    # The retained `online` status reached the collector (with buffered = 0).
    assert wait_until(lambda: stack.storage.counts()["device_status"] >= 1, 10)
    statuses = stack.storage.recent("device_status", 10)
    online = [s for s in statuses if s["state"] == "online"]
    assert online and online[0]["buffered"] == 0, statuses  # the newest: all caught up
    assert all(s["dropped"] == 0 for s in online), statuses
    # Free heap after a collection, from MicroPython's gc.mem_free(): inside the 256 KB heap.
    assert all(0 < s["heap"] < 256 * 1024 for s in online), statuses


def test_broker_outage_loses_nothing(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    controllable()
    count = 60  # one reading every 100 ms: 6 s, the broker is away for 3 s of them
    runner = Runner(micropython, board_mpy, mqtt_url, stack.town, tmp_path / "flash",
                    count=count, interval_ms=100)
    try:
        runner.wait_for("made", check=lambda line: line["seq"] >= 9 and line["sent"])
        try:
            testbed.stop_mosquitto()
            time.sleep(3)
        finally:
            testbed.start_mosquitto()
        done = runner.wait_for("done", timeout=30)
        assert runner.proc.wait(10) == 0
    finally:
        runner.kill()
    made = runner.made()
    assert made == list(range(count))
    offline = [line for line in runner.ops("made") if not line["sent"]]
    # While the broker was away the readings went to flash, and the device said so.
    assert len(offline) >= 15, offline
    assert max(line["buffered"] for line in offline) >= 15
    assert done["buffered_total"] == len(offline)
    assert done["replayed"] == done["buffered_total"]  # every buffered one went out later
    assert done["live"] + done["buffered_total"] == count
    rows = stored(stack, count)
    assert_exactly_once(stack, rows, made)
    # At the reconnect the `online` status (built from link.health) said how much was waiting.
    onlines = [line["text"] for line in runner.ops("log") if line["text"].startswith("online")]
    assert onlines[0] == "online, 0 buffered"
    waiting = [int(text.split()[1]) for text in onlines[1:]]
    assert waiting and max(waiting) == done["peak"] > 0, onlines
    print(f"outage: made {count}, buffered {done['buffered_total']} (peak "
          f"{done['peak']}), stored {len(rows)}, connects {done['attempts']}")


def test_full_buffer_keeps_the_newest_and_reports_what_it_dropped(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    """A long outage overfills a small buffer: the oldest readings go, the newest stay, and
    the device's status tells the server how many were lost (device_status.dropped)."""
    controllable()
    count = 60
    runner = Runner(micropython, board_mpy, mqtt_url, stack.town, tmp_path / "flash",
                    count=count, interval_ms=50, buffer_bytes=1024)
    try:
        runner.wait_for("made", check=lambda line: line["seq"] >= 4 and line["sent"])
        try:
            testbed.stop_mosquitto()
            runner.wait_for("made", check=lambda line: line["seq"] >= count - 1, timeout=20)
        finally:
            testbed.start_mosquitto()
        done = runner.wait_for("done", timeout=30)
        assert runner.proc.wait(10) == 0
    finally:
        runner.kill()
    made = runner.made()
    assert made == list(range(count))
    assert done["dropped"] > 0 and done["replayed"] > 0, done
    assert done["live"] + done["replayed"] + done["dropped"] == count
    rows = stored(stack, count - done["dropped"])
    seqs = [r["seq"] for r in rows]
    live = [line["seq"] for line in runner.ops("made") if line["sent"]]
    kept = sorted(set(seqs) - set(live))
    # What was kept is the newest run of the outage: everything after the last dropped one.
    assert kept == list(range(count - done["replayed"], count)), kept
    assert len(seqs) == len(set(seqs)) == count - done["dropped"]
    assert wait_until(lambda: any(
        s["dropped"] == done["dropped"] for s in stack.storage.recent("device_status", 20)),
        30), (done, stack.storage.recent("device_status", 20))
    print(f"full buffer: made {count}, live {done['live']}, dropped {done['dropped']}, "
          f"replayed {done['replayed']}, stored {len(rows)}")


def test_power_cut_with_backlog_replays_after_restart(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    controllable()
    flash = tmp_path / "flash"
    hold = 8  # the first runner stops measuring once 8 readings wait in flash
    first = Runner(micropython, board_mpy, mqtt_url, stack.town, flash, count=1000,
                   interval_ms=100, hold=hold)
    try:
        first.wait_for("made", check=lambda line: line["seq"] >= 4 and line["sent"])
        try:
            testbed.stop_mosquitto()
            held = first.wait_for("hold", timeout=15)
            first.kill()  # the power cut, with a backlog in flash and the broker away
        finally:
            testbed.start_mosquitto()
    finally:
        first.kill()
    assert held["buffered"] == hold
    made_first = first.made()
    second = Runner(micropython, board_mpy, mqtt_url, stack.town, flash, count=5,
                    interval_ms=100)
    try:
        start = second.wait_for("start")
        done = second.wait_for("done", timeout=30)
        assert second.proc.wait(10) == 0
    finally:
        second.kill()
    # The backlog survived the power cut; numbering continues after the saved block.
    assert start["boot"] == 2 and start["buffered"] == hold
    assert start["next_seq"] > max(made_first)
    assert done["replayed"] == hold
    made_second = second.made()
    assert min(made_second) >= start["next_seq"]
    rows = stored(stack, len(made_first) + len(made_second))
    assert_exactly_once(stack, rows, made_first, made_second)
    print(f"power cut: made {len(made_first)} + {len(made_second)}, buffered at the cut "
          f"{hold}, stored {len(rows)}, seqs {made_first[0]}..{made_first[-1]} then "
          f"{made_second[0]}..{made_second[-1]}")
