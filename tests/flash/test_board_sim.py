"""The board simulator answers the REAL mpremote as a board would (tests/flash/board_sim.py)."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.flash.board_sim import BoardSim

pytestmark = pytest.mark.services


@pytest.fixture
def board(micropython: str, tmp_path: Path) -> Iterator[BoardSim]:
    with BoardSim(micropython, tmp_path / "flash") as sim:
        yield sim


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_fs_commands_exec_and_reset(board: BoardSim, tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    assert mpremote(board.path, "fs", "mkdir", ":lib").returncode == 0
    source = REPO / "machikit" / "contract.py"
    done = mpremote(board.path, "fs", "cp", str(source), ":lib/contract.py")
    assert done.returncode == 0, done.stderr
    assert (flash / "lib" / "contract.py").read_bytes() == source.read_bytes()
    listing = mpremote(board.path, "fs", "ls", ":lib")
    assert "contract.py" in listing.stdout
    shown = mpremote(board.path, "fs", "cat", ":lib/contract.py")
    assert "def topic(town, device, channel):" in shown.stdout
    # The board's /lib is on its import path, as on a real board.
    ran = mpremote(board.path, "exec", "import contract, sys\n"
                   "print(contract.topic('t', 'd', 'status'), sys.implementation.version)")
    assert ran.returncode == 0, ran.stderr
    assert "machikit/v1/t/d/status (1, 25, 0, '')" in ran.stdout
    again = mpremote(board.path, "fs", "mkdir", ":lib")
    assert again.returncode == 1 and "File exists" in again.stderr  # errno text understood
    assert mpremote(board.path, "reset").returncode == 0
    assert board.wait_resets(1)


def test_state_survives_between_execs_until_a_soft_reset(board: BoardSim) -> None:
    from mpremote.transport import TransportExecError
    from mpremote.transport_serial import SerialTransport

    link = SerialTransport(board.path, timeout=1)
    try:
        link.enter_raw_repl(soft_reset=True)
        link.exec("x = 41")
        assert link.exec("print(x + 1)").strip() == b"42"
        with pytest.raises(TransportExecError, match="ZeroDivisionError"):
            link.exec("1/0")
        link.exit_raw_repl()
        link.enter_raw_repl(soft_reset=True)  # MPY: soft reboot -> fresh globals
        with pytest.raises(TransportExecError, match="NameError"):
            link.exec("print(x)")
    finally:
        link.close()
    assert board.soft_resets == 2
