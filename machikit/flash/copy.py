"""Copy the board's files with mpremote, check its MicroPython, reset it, see it online.

mpremote is used as a library (SerialTransport), not as `python -m mpremote` subprocesses:
every `mpremote connect` soft-resets the board and re-enters the raw REPL, so one process
per file would be slow and would give a running watchdog more chances to reset the board
mid-copy; one connection for the whole board also keeps the error types (no port, busy,
no answer, a failed exec) instead of text to parse. The price: SerialTransport is not a
stable API (mpremote says so), so only its long-standing basics are used here — open,
enter_raw_repl, exec, exec_raw_no_follow, fs_writefile, close — with mpremote pinned >=1.25.
"""

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from machikit.flash.bundle import BundleError, build_bundle
from machikit.texts import say

WANTED = (1, 25)  # the firmware is tested on MicroPython 1.25; mpy-cross 1.25 made the .mpy
Progress = Callable[[int, int, str], None]


class FlashError(Exception):
    """One bilingual line saying what went wrong and what to do."""


def _last_line(err: Exception) -> str:
    """A board's traceback ends with the line that matters: keep messages to one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def flash_board(port: str, app: str, device_config: dict, progress: Progress | None = None,
                answer_timeout: float = 5.0, ca_der: bytes | None = None) -> None:
    """Put `app` with its config (and the broker's CA, ca_der) on the board at `port`, then
    reset it. Works offline."""
    with TemporaryDirectory(prefix="machikit-flash-") as tmp:
        try:
            files = build_bundle(Path(tmp), app, device_config, ca_der)
        except BundleError as err:
            raise FlashError(say("flash_bundle_failed", detail=err)) from err
        with _board(port, answer_timeout) as board:
            _check_version(board, port)
            had_main = _remove_main(board, port)
        if had_main:
            # A flashed board was running main.py, whose watchdog keeps running after Ctrl-C
            # and would reset the board part-way through the copy. Reset it now that main.py
            # is gone: it comes back at the REPL with no watchdog.
            with _board(port, answer_timeout, wait_s=10) as board:
                _reset(board)
            time.sleep(1)
        with _board(port, answer_timeout, wait_s=10) as board:
            _copy(board, port, Path(tmp), files, progress or (lambda done, total, name: None))
            _reset(board)


def read_board_id(port: str, answer_timeout: float = 5.0) -> str:
    """The board's own unique id, machine.unique_id() (the flash chip's id on a Pico, the
    MAC on an ESP32), in hex: it tells boards apart when their USB serial number cannot."""
    with _board(port, answer_timeout) as board:
        out = board.exec("import machine, binascii\n"
                         "print(binascii.hexlify(machine.unique_id()).decode())")
    return bytes(out).decode("ascii", "replace").strip()


@contextlib.contextmanager
def _board(port: str, answer_timeout: float, wait_s: int = 0) -> Iterator[Any]:
    """An open connection in the raw REPL (after a soft reset), closed at the end."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    _probe(port, wait_s)
    try:
        # A finite read timeout: on a pseudo-terminal mpremote reads without one, and a
        # port with no MicroPython behind it would hang forever.
        board = SerialTransport(port, timeout=1, wait=wait_s)
    except TransportError as err:
        raise FlashError(say("flash_port_busy", port=port)) from err
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
            board.enter_raw_repl(soft_reset=True, timeout_overall=answer_timeout)
        yield board
    except TransportError as err:
        if not board.in_raw_repl:
            raise FlashError(say("flash_no_micropython", port=port)) from err
        raise FlashError(say("flash_copy_failed", port=port, detail=_last_line(err))) from err
    finally:
        with contextlib.suppress(Exception):  # the board may have gone (reset, unplugged)
            board.close()


def _probe(port: str, wait_s: int) -> None:
    """Open the port once ourselves, to tell "not there" from "in use": mpremote turns both
    into "failed to access". A board that is resetting gets wait_s to come back."""
    import serial

    deadline = time.monotonic() + wait_s
    while True:
        try:
            serial.Serial(port, 115200, exclusive=True).close()
            return
        except (serial.SerialException, OSError) as err:
            text = repr(err).lower()
            if any(word in text for word in ("busy", "lock", "permission", "denied",
                                             "errno 16", "errno 13", "errno 11")):
                raise FlashError(say("flash_port_busy", port=port)) from err
            if time.monotonic() >= deadline:
                raise FlashError(say("flash_no_port", port=port)) from err
            time.sleep(0.5)


def _run(board: Any, port: str, code: str) -> str:
    from mpremote.transport import TransportError

    try:
        return str(board.exec(code).decode())
    except (TransportError, OSError) as err:
        raise FlashError(say("flash_copy_failed", port=port, detail=_last_line(err))) from err


def _check_version(board: Any, port: str) -> None:
    out = _run(board, port, "import sys\nprint(tuple(sys.implementation.version[:3]))")
    found = tuple(int(part) for part in out.strip().strip("()").split(",")[:3])
    if found[:2] != WANTED:
        raise FlashError(say("flash_wrong_version", found=".".join(map(str, found)),
                             wanted=".".join(map(str, WANTED))))


def _remove_main(board: Any, port: str) -> bool:
    """Remove main.py first: until the new one arrives (last), a reset ends at the REPL."""
    out = _run(board, port, "import os\ntry:\n os.remove('main.py')\n print(1)\n"
                            "except OSError:\n print(0)")
    return out.strip() == "1"


def _copy(board: Any, port: str, root: Path, files: list[Path], progress: Progress) -> None:
    from mpremote.transport import TransportError

    names = [file.relative_to(root).as_posix() for file in files]
    folders = sorted({str(Path(name).parent) for name in names} - {"."})
    # Each folder's parents come first (sorted); an existing one is fine.
    _run(board, port, f"import os\nfor d in {folders!r}:\n try:\n  os.mkdir(d)\n except OSError:\n"
                      "  pass")
    progress(0, len(files), "")
    for done, (file, name) in enumerate(zip(files, names, strict=True), start=1):
        try:
            board.fs_writefile(name, file.read_bytes())
        except (TransportError, OSError) as err:
            detail = f"{name}: {_last_line(err)}"
            raise FlashError(say("flash_copy_failed", port=port, detail=detail)) from err
        progress(done, len(files), name)
    # A cheap check that nothing was cut short: every size as on the PC.
    sizes = _run(board, port, f"import os\nprint([os.stat(p)[6] for p in {names!r}])")
    if sizes.strip() != str([file.stat().st_size for file in files]):
        raise FlashError(say("flash_copy_failed", port=port, detail="sizes differ: " + sizes))


def _reset(board: Any) -> None:
    """A hard reset, as `mpremote reset` does; the board drops off the line right away."""
    board.exec_raw_no_follow("import time, machine; time.sleep_ms(100); machine.reset()")


def progress_bar(done: int, total: int, name: str) -> None:
    """One line, redrawn: files done / total (no extra dependency)."""
    width = 30
    filled = width * done // max(total, 1)
    line = say("flash_progress", done=done, total=total)
    end = "\n" if done == total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {line} {name[-32:]:<32}", end=end,
          flush=True)
