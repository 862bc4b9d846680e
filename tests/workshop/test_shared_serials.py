"""Cheap ESP32 boards share a USB serial number (CP210x bridges ship with "0001") or have
none (CH340): the workshop loop asks each such board for its own id (machine.unique_id()
over the raw REPL) so that the second board is flashed too, and a re-plugged one is not
flashed twice. Real flashing into simulated boards (tests/flash/board_sim.py: mpremote's
protocol on a pty, the real MicroPython unix port behind it); only USB discovery is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Storage
from machikit import flash
from machikit.flash.boards import BoardPort
from machikit.workshop.flashing import Broker, FlashLoop
from machikit.workshop.prepare import prepare
from tests.collector.helpers import unique_town
from tests.collector.stacks import migrated
from tests.flash.board_sim import BoardSim

pytestmark = pytest.mark.services


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with migrated(f"sqlite:///{tmp_path}/town.db") as store:
        yield store


@pytest.mark.parametrize("serial", ["0001", None])
def test_boards_with_one_serial_number_are_told_apart_by_their_own_id(
        micropython: str, storage: Storage, tmp_path: Path, serial: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("名前,アプリ\n山田 花子,snow\n佐藤 一郎,snow\n", encoding="utf-8")
    out = tmp_path / "workshop"
    prepare(roster, unique_town(), storage, out, "http://192.168.10.2:8080/", "ap",
            report=lambda line: None)
    boards = [BoardSim(micropython, tmp_path / f"esp{n}", uid=f"a0b76554{n:04x}")
              for n in range(2)]
    plugged = [BoardPort(b.path, 0x10C4, 0xEA60, serial, "esp32") for b in boards]
    lines: list[str] = []
    try:
        for board in boards:
            board.__enter__()
        monkeypatch.setattr(flash, "find_boards", lambda: list(plugged))
        loop = FlashLoop(out / "devices.json", "ap", "pw", Broker("192.168.10.2"),
                         report=lines.append)
        loop.poll()  # both plugged in at once
        assert sum("flashed. Unplug it" in line for line in lines) == 2, "\n".join(lines)
        names = {json.loads((b.flash / "config.json").read_text(encoding="utf-8"))
                 ["device"]["name"] for b in boards}
        assert names == {"snow-01", "snow-02"}
        recorded = json.loads((out / "flashed.json").read_text(encoding="utf-8"))
        assert recorded == {"board-id:a0b765540000": "snow-01",
                            "board-id:a0b765540001": "snow-02"}

        monkeypatch.setattr(flash, "find_boards", lambda: [])  # both unplugged…
        loop.poll()
        monkeypatch.setattr(flash, "find_boards", lambda: plugged[:1])  # …one comes back
        loop.poll()
        assert lines[-1].endswith("this board is already snow-01 (nothing to do)"), lines[-1]
    finally:
        for board in boards:
            board.__exit__(None, None, None)
