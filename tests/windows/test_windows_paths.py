"""Windows-shaped inputs on Linux: COM port names as pyserial lists them on Windows, its
Windows error texts, mpremote's Windows branch, and quickstart.py's Windows venv layout.

The port entries are real `serial.tools.list_ports_common.ListPortInfo` objects filled in
the way pyserial's list_ports_windows fills them (skip_link_detection=True, vid/pid/serial
from the USB hardware id). The errors are the texts pyserial's serialwin32.py raises:
"could not open port {port!r}: {ctypes.WinError()!r}", with Windows' messages in Japanese.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from serial.serialutil import SerialBase
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

import quickstart
from machikit.cli import build_parser, missing_extra
from machikit.flash import boards
from machikit.flash import cli as flash_cli
from machikit.flash.bundle import device_config
from machikit.flash.copy import FlashError, flash_board
from tests.conftest import REPO
from tests.flash.board_sim import BoardSim


def windows_port(device: str, vid: int | None, pid: int | None, serial_number: str | None,
                 description: str) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)  # as list_ports_windows makes it
    info.vid, info.pid, info.serial_number = vid, pid, serial_number
    info.description = f"{description} ({device})"
    info.hwid = (f"USB VID:PID={vid:04X}:{pid:04X} SER={serial_number or ''}" if vid
                 else "ACPI\\PNP0501\\1")
    return info


# What Windows' Device Manager shows on a workshop laptop with four boards plugged in.
WINDOWS_PORTS = [
    windows_port("COM1", None, None, None, "通信ポート"),  # the PC's own port: not a board
    windows_port("COM10", 0x1A86, 0x7523, None, "USB-SERIAL CH340"),
    windows_port("COM3", 0x2E8A, 0x0005, "E6614C311B4B7A2B", "USB シリアル デバイス"),
    windows_port("COM4", 0x10C4, 0xEA60, "0001", "Silicon Labs CP210x USB to UART Bridge"),
    windows_port("COM5", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB シリアル デバイス"),
]
FLASH_ARGS = ["--app", "snow", "--town", "muroran", "--name", "snow-01", "--user",
              "muroran.snow-01", "--password", "pw", "--wifi-ssid", "役場", "--wifi-password",
              "x", "--broker-host", "192.0.2.1"]
# ctypes.WinError() on a Japanese Windows, as repr() shows it inside pyserial's message
NOT_FOUND = "FileNotFoundError(2, '指定されたファイルが見つかりません。', None, 2)"
ACCESS_DENIED = "PermissionError(13, 'アクセスが拒否されました。', None, 5)"


@pytest.fixture
def windows_list(monkeypatch: pytest.MonkeyPatch) -> list[ListPortInfo]:
    ports = list(WINDOWS_PORTS)
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: list(ports))
    return ports


def test_boards_are_found_by_vid_pid_with_their_com_names(windows_list: Any) -> None:
    found = boards.find_boards()
    assert [(b.device, b.kind) for b in found] == [
        ("COM3", "pico"), ("COM4", "esp32"), ("COM5", "esp32"), ("COM10", "esp32")]
    assert found[0].serial_number == "E6614C311B4B7A2B" and found[0].vid == 0x2E8A
    everything = boards.find_boards(include_unknown=True)
    assert [(b.device, b.kind) for b in everything] == [("COM1", "unknown"), *(
        (b.device, b.kind) for b in found)]


def test_port_order_is_by_number() -> None:
    names = ["COM10", "COM3", "COM21", "COM4", "/dev/ttyUSB0", "/dev/ttyACM1", "/dev/ttyACM0"]
    assert sorted(names, key=boards.port_order) == [
        "/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyUSB0", "COM3", "COM4", "COM10", "COM21"]


def flash_args(*extra: str) -> Any:
    return build_parser("flash").parse_args(["flash", *extra, *FLASH_ARGS])


def test_flash_port_com3_parses_and_passes_through() -> None:
    args = flash_args("--port", "COM3")
    assert args.port == "COM3" and flash_cli._pick_port(args) == "COM3"


def test_flash_auto_picks_the_com_port(windows_list: list[ListPortInfo]) -> None:
    with pytest.raises(FlashError) as err:
        flash_cli._pick_port(flash_args("--auto"))
    assert "COM3, COM4, COM5, COM10" in str(err.value)  # several boards: it names them all
    windows_list[:] = [WINDOWS_PORTS[0], WINDOWS_PORTS[2]]
    assert flash_cli._pick_port(flash_args("--auto")) == "COM3"


@pytest.mark.parametrize(("winerror", "words"), [
    (NOT_FOUND, ("見つかりません", "CP210x", "CH340")),
    (ACCESS_DENIED, ("使用中", "Thonny")),
    ("FileNotFoundError(2, 'The system cannot find the file specified.', None, 2)",
     ("見つかりません",)),
    ("PermissionError(13, 'Access is denied.', None, 5)", ("使用中",)),
])
def test_windows_open_errors_name_the_port(monkeypatch: pytest.MonkeyPatch, winerror: str,
                                           words: tuple[str, ...]) -> None:
    def windows_serial(port: str, *args: Any, **kwargs: Any) -> None:
        raise serial.SerialException(f"could not open port {port!r}: {winerror}")

    monkeypatch.setattr(serial, "Serial", windows_serial)
    with pytest.raises(FlashError) as err:
        flash_board("COM3", "snow", {})
    text = str(err.value)
    assert "COM3" in text and all(word in text for word in words), text
    assert "\n" not in text and " / " in text


def test_flash_command_names_the_com_port(tmp_path: Path) -> None:
    """The command as typed on Windows; on this machine there is no COM3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}
    done = subprocess.run([sys.executable, "-m", "machikit", "flash", "--port", "COM3",
                           *FLASH_ARGS], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert done.returncode == 1, done.stderr
    assert "ポート COM3 が見つかりません" in done.stdout and "Port COM3 not found" in done.stdout


# --- mpremote's Windows branch ---------------------------------------------------------------

class WindowsOs(types.ModuleType):
    """os, as mpremote's transport_serial sees it on Windows (only os.name differs)."""

    name = "nt"

    def __getattr__(self, attribute: str) -> Any:
        return getattr(os, attribute)


class RecordingSerial:
    """A port as serial_for_url(do_not_open=True) gives it: records what is done to it."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url, self.kwargs, self.done, self.opened = url, kwargs, [], False

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("dtr", "rts"):
            self.done.append((name, value))
        object.__setattr__(self, name, value)

    def open(self) -> None:
        self.done.append("open")
        self.opened = True

    def isOpen(self) -> bool:  # pyserial's old name, which mpremote calls
        return self.opened


@pytest.fixture
def mpremote_on_windows(monkeypatch: pytest.MonkeyPatch,
                        windows_list: list[ListPortInfo]) -> None:
    from mpremote import transport_serial

    monkeypatch.setattr(transport_serial, "os", WindowsOs("os"))


@pytest.mark.usefixtures("mpremote_on_windows")
@pytest.mark.parametrize(("port", "done"), [
    # CP210x on Windows: DTR and RTS cleared before opening, set after (no ESP32 reset)
    ("COM4", [("dtr", False), ("rts", False), "open", ("dtr", True), ("rts", True)]),
    ("COM3", ["open"]),  # a Pico W: opened as is
])
def test_mpremote_gets_the_com_name_and_its_windows_quirk(
    monkeypatch: pytest.MonkeyPatch, port: str, done: list[Any],
) -> None:
    from mpremote.transport_serial import SerialTransport

    made: list[RecordingSerial] = []

    def serial_for_url(url: str, **kwargs: Any) -> RecordingSerial:
        made.append(RecordingSerial(url, **kwargs))
        return made[-1]

    monkeypatch.setattr(serial, "serial_for_url", serial_for_url)
    SerialTransport(port, timeout=1)
    assert [m.url for m in made] == [port] and made[0].done == done


@pytest.fixture
def com3_is_a_board(micropython: str, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[BoardSim]:
    """The simulated board (tests/flash/board_sim.py) answers as COM3: pyserial opens its
    pseudo-terminal whenever COM3 is asked for. Everything above pyserial sees only COM3."""
    with BoardSim(micropython, tmp_path / "flash") as sim:
        real_setter = SerialBase.port.fset
        assert real_setter is not None

        def open_com3(self: SerialBase, port: str | None) -> None:
            real_setter(self, sim.path if port == "COM3" else port)

        class WindowsSerial(serial.Serial):  # type: ignore[misc, valid-type]
            port = property(SerialBase.port.fget, open_com3)

        monkeypatch.setattr(serial, "Serial", WindowsSerial)
        yield sim


@pytest.mark.services
@pytest.mark.usefixtures("mpremote_on_windows")
def test_flash_to_com3_through_mpremotes_windows_branch(com3_is_a_board: BoardSim,
                                                        tmp_path: Path) -> None:
    steps: list[tuple[int, int, str]] = []
    flash_board("COM3", "snow", device_config("muroran", "snow-01", "u", "p", "役場", "x",
                                              "192.0.2.1", 1883, tls=False),
                progress=lambda done, total, name: steps.append((done, total, name)))
    assert steps[-1][2] == "main.py" and steps[-1][0] == steps[-1][1]
    assert (tmp_path / "flash" / "lib" / "snow_app.mpy").exists()
    assert com3_is_a_board.wait_resets(1)


# --- quickstart.py and the install hint on Windows --------------------------------------------

def test_quickstart_venv_layout_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """venv puts Scripts\\python.exe on Windows, bin/python elsewhere; os.name is changed only
    around these calls and restored."""
    with monkeypatch.context() as patch:
        patch.setattr(os, "name", "nt")
        python, machikit = quickstart.venv_bin("python"), quickstart.venv_bin("machikit")
        on_path = quickstart.venv_env()["PATH"].split(os.pathsep)[0]
        hint = missing_extra("collector", "paho")
    assert os.name == "posix"
    assert python == quickstart.VENV / "Scripts" / "python.exe"
    assert machikit == quickstart.VENV / "Scripts" / "machikit.exe"
    assert on_path == str(quickstart.VENV / "Scripts")
    assert "py -3 quickstart.py install collector" in hint
    assert quickstart.venv_bin("python") == quickstart.VENV / "bin" / "python"
    assert "python3 quickstart.py install collector" in missing_extra("collector", "paho")


def test_quickstart_hands_over_on_windows_by_waiting(tmp_path: Path) -> None:
    """On Windows quickstart cannot exec: it runs the command, waits, and passes its exit
    code on. In a process of its own, since this ignores Ctrl-C there."""
    script = (
        "import os, sys, quickstart\n"
        "os.name = 'nt'\n"
        "try:\n"
        "    quickstart.hand_over([sys.executable, '-c', 'print(\"まちキット\"); raise"
        " SystemExit(3)'], dict(os.environ))\n"
        "except quickstart.Failed as failure:\n"
        "    print('failed', failure.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                          encoding="utf-8", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["まちキット", "failed 3"]


# --- Linux-only commands on Windows ---------------------------------------------------------
# pi gps-replay needs pty/termios, pi install needs grp/pwd: Windows has none of them. The
# command must say it is for Linux, not send the user to reinstall (machikit/cli.py).

@pytest.mark.parametrize(("absent", "argv"), [
    ("termios", ["pi", "gps-replay", "tests/fixtures/nmea/gpsd/neo-m8n.log"]),
    ("grp", ["pi", "install", "gps", "--no-start", "--root", "{tmp}"]),
])
def test_a_linux_only_command_says_so_on_windows(tmp_path: Path, absent: str,
                                                 argv: list[str]) -> None:
    script = (
        "import sys\n"
        f"sys.modules[{absent!r}] = None  # as on Windows: no such module\n"
        "for name in ('pty', 'tty'):\n"
        "    sys.modules.pop(name, None)\n"
        "from machikit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    done = subprocess.run([sys.executable, "-c", script, *argv], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, encoding="utf-8", timeout=60)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "Linux" in line and absent in line and "quickstart.py install" not in line, line
