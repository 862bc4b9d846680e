"""The workshop from roster to online boards, with every real part this machine can run:

roster.csv (Japanese Excel, cp932) → `prepare` registers 3 devices (real registry, SQLite)
and prints labels → `machikit device broker-files` → a real Mosquitto 2.0.21 loads the
passwd + acl → the workshop flash loop flashes 3 simulated boards (tests/flash/board_sim.py:
mpremote's raw-REPL protocol over a pty, the real MicroPython unix port behind it) → each
board's flash is booted by the real MicroPython (fake machine/network only) → all three
come online on that Mosquitto, each with its own password and topics.

Only USB discovery is replaced: a pty has no VID/PID, so find_boards() lists the three
simulators as three plugged-in boards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.broker import COLLECTOR_USER
from collector.registry import write_broker_files
from collector.storage import Storage
from machikit import flash
from machikit.flash.boards import BoardPort
from machikit.workshop.flashing import Broker, FlashLoop
from machikit.workshop.prepare import prepare
from tests.collector.helpers import unique_town
from tests.collector.stacks import migrated
from tests.collector.test_broker_acl import (
    SERVICE,
    SERVICE_HASHES,
    SecondMosquitto,
    mosquitto_root,
)
from tests.firmware.process import mpy_cross
from tests.flash.board_sim import BoardSim

pytestmark = pytest.mark.services

FAKES = Path(__file__).resolve().parents[1] / "firmware" / "fakes"
ROSTER = "名前,アプリ\n山田 花子,snow\n佐藤 一郎,printer\n鈴木 次郎,snow\n"


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with migrated(f"sqlite:///{tmp_path}/town.db") as store:
        yield store


@pytest.fixture
def compiled_fakes(tmp_path: Path) -> Path:
    folder = tmp_path / "fakes"
    folder.mkdir()
    for fake in FAKES.glob("*.py"):
        mpy_cross(fake, folder / f"{fake.stem}.mpy")
    return folder


def power_on(micropython: str, board_flash: Path, fakes: Path,
             prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """A flashed board switched on: its main.py, its /lib, fake machine/network.
    prefix: e.g. `ip netns exec NS`, to switch it on somewhere else on the network."""
    (board_flash / "fake_scenario.json").write_text('{"distance_cm": 165, "air_c": -5}')
    return subprocess.Popen(
        [*prefix, micropython, "-X", "heapsize=144k", "main.py"], cwd=board_flash,
        env={**os.environ, "MICROPYPATH": f"{fakes}:{board_flash / 'lib'}",
             "MK_FAKE_STEPS": "600"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_roster_of_three_to_three_boards_online(
    micropython: str, storage: Storage, compiled_fakes: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    town = unique_town()
    roster = tmp_path / "roster.csv"
    roster.write_bytes(ROSTER.encode("cp932"))  # what Japanese Excel saves
    out = tmp_path / "workshop"
    entries = prepare(roster, town, storage, out, "https://map.example.jp/", "workshop-ap",
                      report=lambda line: None)
    assert [e["device"] for e in entries] == ["snow-01", "printer-01", "snow-02"]
    assert (out / "labels.pdf").stat().st_size > 1000

    mosquitto = SecondMosquitto(mosquitto_root())
    boards = [BoardSim(micropython, tmp_path / f"board{n}") for n in range(3)]
    running: list[subprocess.Popen[str]] = []
    try:
        write_broker_files(storage, mosquitto.folder, SERVICE_HASHES)
        mosquitto.start()
        for board in boards:
            board.__enter__()
        plugged = [BoardPort(board.path, 0x2E8A, 0x0005, f"E66138{n:010d}", "pico")
                   for n, board in enumerate(boards)]
        monkeypatch.setattr(flash, "find_boards", lambda: plugged)
        watch = f"mqtt://{COLLECTOR_USER}:{SERVICE[COLLECTOR_USER]}@127.0.0.1:{mosquitto.port}"
        lines: list[str] = []
        loop = FlashLoop(out / "devices.json", "workshop-ap", "secret",
                         Broker("127.0.0.1", mosquitto.port, tls=False, mqtt_url=watch,
                                online_timeout_s=60), report=lines.append)
        watchers = loop.poll()  # all three "plugged in": flashed one after another
        assert len(watchers) == 3, lines
        for board in boards:
            running.append(power_on(micropython, board.flash, compiled_fakes))
        for watcher in watchers:
            watcher.join(70)
        online = [line for line in lines if line.endswith(" is online")]
        assert len(online) == 3, "\n".join(lines) + mosquitto.log()
        assert loop.poll() == [] and loop.next_device() is None  # nothing flashed twice
    finally:
        for proc in running:
            proc.kill()
            proc.communicate(timeout=10)
        for board in boards:
            board.__exit__(None, None, None)
        mosquitto.stop()
