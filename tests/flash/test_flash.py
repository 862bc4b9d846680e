"""`machikit flash` onto a simulated board (board_sim.py: the real mpremote protocol, the
real MicroPython unix port), then that board's flash folder booted by the real MicroPython
and seen online on the test bed's real Mosquitto. And one clear line for each known failure.
"""

import os
import pty
import subprocess
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from machikit import contract
from machikit.flash.bundle import device_config
from machikit.flash.copy import FlashError, flash_board
from machikit.flash.watch import wait_online
from tests.collector.helpers import clear_retained, credentials, forget_session, unique_town
from tests.firmware.process import mpy_cross
from tests.flash.board_sim import BoardSim

pytestmark = pytest.mark.services

FIRMWARE_FAKES = Path(__file__).resolve().parents[1] / "firmware" / "fakes"
NAME = "snow-01"


@pytest.fixture
def board(micropython: str, tmp_path: Path) -> Iterator[BoardSim]:
    with BoardSim(micropython, tmp_path / "flash") as sim:
        yield sim


@pytest.fixture
def town(mqtt_url: str) -> Iterator[str]:
    town = unique_town()
    yield town
    forget_session(mqtt_url, f"mk-{town}-{NAME}")
    clear_retained(mqtt_url, [contract.topic(town, NAME, contract.STATUS)])


def config_for(mqtt_url: str, town: str) -> dict:
    host, port, user, password = credentials(mqtt_url)
    return device_config(town, NAME, user, password, "test-ap", "x", host, port, tls=False)


def boot(micropython: str, flash: Path, fakes: Path) -> "subprocess.Popen[str]":
    """The flashed board powered on: main.py from its flash, its /lib, and the fake
    machine/network modules standing in for the board's C modules (tests/firmware/fakes)."""
    return subprocess.Popen(
        [micropython, "-X", "heapsize=144k", "main.py"], cwd=flash,
        env={**os.environ, "MICROPYPATH": f"{fakes}:{flash / 'lib'}", "MK_FAKE_STEPS": "400"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_flashed_board_boots_and_comes_online(
    micropython: str, board: BoardSim, mqtt_url: str, town: str, tmp_path: Path,
) -> None:
    steps: list[tuple[int, int, str]] = []
    flash_board(board.path, "snow", config_for(mqtt_url, town),
                progress=lambda done, total, name: steps.append((done, total, name)))
    flash = tmp_path / "flash"
    assert (flash / "main.py").exists() and (flash / "lib" / "umqtt" / "simple.mpy").exists()
    assert (flash / "lib" / "snow_app.mpy").exists() and (flash / "lib" / "contract.mpy").exists()
    assert not (flash / "lib" / "printer_app.mpy").exists()  # only the chosen app
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1] and steps[-1][2] == "main.py"
    assert board.wait_resets(1)  # reset at the end, as on a real board

    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for fake in FIRMWARE_FAKES.glob("*.py"):
        mpy_cross(fake, fakes / f"{fake.stem}.mpy")
    running = boot(micropython, flash, fakes)
    try:
        assert wait_online(mqtt_url, town, NAME, timeout=30), running.stdout
    finally:
        running.kill()
        out, _ = running.communicate(timeout=10)
    assert "Traceback" not in out, out


def test_reflash_removes_main_and_resets_first(
    micropython: str, board: BoardSim, mqtt_url: str, town: str, tmp_path: Path,
) -> None:
    config = config_for(mqtt_url, town)
    flash_board(board.path, "printer", config)
    flash_board(board.path, "snow", config)  # main.py there: reset before copying
    assert board.wait_resets(3) and board.resets == 3
    assert '"name": "snow"' in (tmp_path / "flash" / "config.json").read_text()


def one_line(err: pytest.ExceptionInfo[FlashError]) -> str:
    text = str(err.value)
    assert "\n" not in text and " / " in text  # Japanese / English, one line
    return text


def test_no_such_port() -> None:
    with pytest.raises(FlashError) as err:
        flash_board("/dev/ttyMACHIKIT-none", "snow", {})
    text = one_line(err)
    assert "見つかりません" in text and "not found" in text and "CH340" in text


def test_busy_port(board: BoardSim) -> None:
    with serial.Serial(board.path, exclusive=True), pytest.raises(FlashError) as err:
        flash_board(board.path, "snow", {})
    text = one_line(err)
    assert "使用中" in text and "Thonny" in text


def test_no_micropython_answers() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(FlashError) as err:
            flash_board(os.ttyname(slave), "snow", {}, answer_timeout=2)
    finally:
        os.close(master)
        os.close(slave)
    text = one_line(err)
    assert "BOOTSEL" in text and "UF2" in text and "esptool" in text


def test_wrong_micropython_version(micropython: str, tmp_path: Path) -> None:
    with BoardSim(micropython, tmp_path / "old", version="1.19.1") as old, \
            pytest.raises(FlashError) as err:
        flash_board(old.path, "snow", {})
    text = one_line(err)
    assert "1.19.1" in text and "1.25" in text
    assert not (tmp_path / "old" / "lib").exists()  # nothing copied
