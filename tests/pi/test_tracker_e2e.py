"""The GPS tracker job end to end: a real recorded drive played into a pty (pi/replay.py) →
`machikit pi run gps` in its own process (pyserial, pynmea2, the SQLite outbox, paho-mqtt) →
the test bed's real Mosquitto → the real collector → TimescaleDB.

The 2.5-hour Reno drive (tests/fixtures/nmea, Apache-2.0) is played 300 times faster; its dates
are moved to two days ago (the collector refuses times before 2020). The job works on
receiver time, so its 5 s / 60 s reporting is the same as in a real drive. What should
arrive is worked out independently of the job by pi.gps.check over the same played lines.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from machikit import geo, testbed
from pi.gps.check import LogResult, check_file
from pi.replay import Replay
from tests.collector.helpers import (
    credentials,
    wait_until,
)
from tests.collector.stacks import Stack, device_stack
from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.services

DRIVE = FIXTURES / "nmea" / "reno-car-drive-2005.nmea"
DEVICE = "bus-01"
PART = 1500  # epochs of the drive for the outage tests: 50 minutes of it
MAX_SPEED = 70.0  # m/s: no two stored points may imply more (the job's jump limit)


@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with device_stack(database_url, mqtt_url, DEVICE, "bus") as s:
        yield s


class Job:
    """`machikit pi run gps` in a subprocess (so a test can kill -9 it)."""

    def __init__(self, tmp: Path, mqtt_url: str, town: str, port: str) -> None:
        host, mqtt_port, user, password = credentials(mqtt_url)
        self.outbox = tmp / "outbox.sqlite3"
        self.config = tmp / "gps.toml"
        self.config.write_text(
            f'[device]\ntown = "{town}"\nname = "{DEVICE}"\nuser = "{user}"\n'
            f'password = "{password}"\n\n[broker]\nhost = "{host}"\nport = {mqtt_port}\n'
            f'tls = false\n\n[gps]\nport = "{port}"\nbaud = 9600\noutbox = "{self.outbox}"\n')
        self.log = tmp / "job.log"
        self.log.touch()
        self.opened = 0  # "port open" lines seen so far
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "machikit", "pi", "run", "gps", "--config",
                 str(self.config)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_open(self) -> None:
        """Until the job has the port open: pyserial empties the input buffer when it opens
        a port, so lines played before that would never reach the job."""
        opened = "GPS receiver open"
        assert wait_until(lambda: self.log.read_text(errors="replace").count(opened)
                          > self.opened, 30), self.log.read_text(errors="replace")
        self.opened += 1

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def next_seq(self) -> int:
        from pi.outbox import Outbox

        outbox = Outbox(self.outbox)
        try:
            return outbox.next_seq
        finally:
            outbox.close()


def played(replay: Replay, tmp: Path, name: str, epochs: int | None = None) -> Path:
    """The exact lines the replay will write, as a file for pi.gps.check."""
    lines = replay.lines
    if epochs is not None:
        from pi.replay import epochs as groups

        lines = [line for _, group in list(groups(lines))[:epochs] for line in group]
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def stored(stack: Stack, expected: int, timeout: float = 120) -> list[dict]:
    wait_until(lambda: stack.storage.counts()["positions"] >= expected, timeout)
    time.sleep(1.0)  # a duplicate would show up now
    rows = stack.storage.recent("positions", expected * 2 + 10)
    return sorted(rows, key=lambda r: r["seq"])


def assert_track(rows: list[dict]) -> None:
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(len(rows))), "every seq given out arrives once, in order"
    for a, b in itertools.pairwise(rows):
        seconds = (b["time"] - a["time"]) / 1000  # storage.recent gives Unix ms
        assert seconds > 0, (a, b)
        metres = geo.metres((a["lat"], a["lon"]), (b["lat"], b["lon"]))
        assert metres / seconds <= MAX_SPEED, (a, b)


@dataclass
class Drive:
    job: Job
    expected: LogResult  # what the played lines should give, worked out without the job
    player: threading.Thread  # the replay, writing into the pty


@contextlib.contextmanager
def drive(stack: Stack, mqtt_url: str, tmp: Path, speed: float,
          epochs: int | None = None) -> Iterator[Drive]:
    """The job running on the Reno drive (its first `epochs`, or all), played at `speed`."""
    replay = Replay(DRIVE, speed=speed, days_ago=2)
    expected = check_file(played(replay, tmp, "drive.nmea", epochs))
    job = Job(tmp, mqtt_url, stack.town, replay.path)
    job.start()
    job.wait_open()
    try:
        player = threading.Thread(target=replay.play, kwargs={"stop_after": epochs},
                                  daemon=True)
        player.start()
        yield Drive(job, expected, player)
    finally:
        job.stop()
        replay.close()


def test_replayed_drive_arrives_as_the_receivers_valid_fixes(
    stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    with drive(stack, mqtt_url, tmp_path, speed=300) as run:
        run.player.join(300)
        rows = stored(stack, run.expected.published)
    expected = run.expected
    assert len(rows) == expected.published == run.job.next_seq()
    assert expected.first is not None and expected.last is not None
    assert geo.metres((rows[0]["lat"], rows[0]["lon"]), expected.first) < 5
    assert geo.metres((rows[-1]["lat"], rows[-1]["lon"]), expected.last) < 5
    assert_track(rows)
    assert stack.storage.counts()["quarantine"] == 0
    print(f"\nreno drive: {expected.fixes} fixes, {expected.accepted} accepted, "
          f"{dict(expected.rejected)} rejected, {expected.published} published, "
          f"{len(rows)} stored")


def controllable() -> None:
    if not testbed.is_controllable():
        pytest.skip("needs the project's test bed, run as root (machikit dev services up)")


def test_broker_outage_mid_drive_loses_nothing(
    stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    controllable()
    # 50 minutes of the drive, played in about 20 s
    with drive(stack, mqtt_url, tmp_path, speed=150, epochs=PART) as run:
        time.sleep(5)
        try:
            testbed.stop_mosquitto()
            time.sleep(8)  # the job keeps reading and queues on disk
        finally:
            testbed.start_mosquitto()
        run.player.join(120)
        rows = stored(stack, run.expected.published)
    expected = run.expected
    assert len(rows) == expected.published == run.job.next_seq()
    assert_track(rows)
    print(f"\noutage: {expected.published} published, {len(rows)} stored")


def test_power_cut_mid_drive_keeps_the_queue(
    stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    controllable()
    with drive(stack, mqtt_url, tmp_path, speed=150, epochs=PART) as run:
        job = run.job
        time.sleep(4)
        try:
            testbed.stop_mosquitto()
            time.sleep(5)  # a backlog builds up on disk
            job.stop(signal.SIGKILL)  # the power cut
            queued = job.next_seq()
        finally:
            testbed.start_mosquitto()
        job.start()  # power back: systemd starts the job again
        job.wait_open()
        run.player.join(120)
        time.sleep(3)
        rows = stored(stack, job.next_seq())
    expected = run.expected
    assert queued > 0
    assert len(rows) == job.next_seq()  # every seq ever given out arrived, once
    assert_track(rows)
    assert len(rows) > queued  # the backlog from before the cut, and the drive after it
    # While the job is dead the receiver's lines are lost (in the killed process, and
    # pyserial empties the port's buffer when the restarted job opens it), as on a real Pi
    # that is off: a few points of the drive are missing, never a seq.
    assert -2 <= expected.published - len(rows) <= 10, (len(rows), expected.published)
    print(f"\npower cut: {queued} queued at the cut, {len(rows)} stored, "
          f"{expected.published} expected without the cut")
