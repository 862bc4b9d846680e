"""Type-check the firmware against MicroPython's stubs for each board (Pico W, ESP32).

    python tools/check_firmware_types.py

MicroPython's stub packages replace CPython's own modules (time, socket, os...), so they
cannot share the venv: each board's set is installed into its own folder under
.venv/firmware-stubs/, from the hash-pinned requirements/stubs-<board>.lock, and used as
mypy's typeshed. Run by `python3 quickstart.py test`; exit status 0 means both boards pass.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS = {"rp2": "Pico W (rp2)", "esp32": "ESP32"}
# Folders that are /lib and / on the board; contract.py comes through `machikit`.
BOARD_PATH = ["firmware/lib", "firmware/apps", "firmware", "."]
CHECKED = ["firmware/lib", "firmware/apps", "firmware/main.py", "firmware/boot.py",
           # shared with the Pi jobs, and run on the boards as /lib/*.mpy
           "machikit/snow_logic.py", "machikit/printer_logic.py"]


def stubs_dir(board: str) -> Path:
    return ROOT / ".venv" / "firmware-stubs" / board


def install_stubs(board: str) -> Path:
    """Install the board's stubs once; again only when its lock file changes."""
    lock = ROOT / "requirements" / f"stubs-{board}.lock"
    target = stubs_dir(board)
    stamp = target / ".lock-sha256"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "install",
                    "--quiet", "--no-user", "--no-deps", "--require-hashes",
                    "--target", str(target), "-r", str(lock)], check=True)
    stamp.write_text(wanted + "\n")
    return target


def check(board: str) -> int:
    stubs = install_stubs(board)
    env = {**os.environ,
           # Our folders first: the vendored umqtt wins over the copy some stubs carry.
           "MYPYPATH": os.pathsep.join([*BOARD_PATH, str(stubs)])}
    command = [sys.executable, "-m", "mypy", "--config-file", "firmware/mypy.ini",
               "--custom-typeshed-dir", str(stubs),
               # One cache per board: the two typesheds must never mix.
               "--cache-dir", str(ROOT / ".mypy_cache" / f"firmware-{board}"),
               *CHECKED]
    print(f"firmware types / ファームウェアの型: {BOARDS[board]}", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main() -> int:
    failed = [board for board in BOARDS if check(board) != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
