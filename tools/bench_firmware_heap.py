"""How much heap the whole firmware needs: the smallest `-X heapsize` in which main.py
boots, comes online on the test bed's real Mosquitto and runs its app for STEPS rounds.

    sudo machikit dev services up        # once: MicroPython and Mosquitto
    python tools/bench_firmware_heap.py

The "board" is a temp folder laid out like the flash: main.py as source (a board runs it
as source too), everything else as .mpy from mpy-cross, plus the fake machine/network
modules of tests/firmware/fakes, also as .mpy (they stand in for the board's C modules and
cost a little heap a board does not spend). Prints one line per app: the smallest heap,
found by bisection. The unix port is 64-bit: its objects are up to twice the size of a
32-bit board's, so a board needs less than this.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.settings import parse_mqtt_url  # noqa: E402
from machikit.testbed import api as testbed  # noqa: E402
from tests.firmware.process import board_lib  # noqa: E402

STEPS = 120  # main-loop rounds: a few measurements, statuses and pings
APPS = {
    "snow": ({"name": "snow", "settings": {"interval_s": 10, "status_s": 60}},
             {"distance_cm": 165, "air_c": -5}),
    "printer": ({"name": "printer", "settings": {"status_s": 60}}, {"adc": {"26": 30000}}),
}


def build_flash(folder: Path) -> None:
    board_lib(folder / "lib")
    shutil.copy(ROOT / "firmware" / "main.py", folder / "main.py")


def write_config(folder: Path, mqtt_url: str, app: dict, scenario: dict) -> None:
    target = parse_mqtt_url(mqtt_url)
    (folder / "config.json").write_text(json.dumps({
        "wifi": {"ssid": "bench-ap", "password": "x"},
        "broker": {"host": target.host, "port": target.port, "tls": False},
        "device": {"town": "benchheap", "name": f"{app['name']}-01",
                   "user": target.username, "password": target.password},
        "app": app,
    }))
    (folder / "fake_scenario.json").write_text(json.dumps(scenario))


def boots(micropython: str, flash: Path, heap_kb: int) -> tuple[bool, str]:
    """One start in `heap_kb`: True if it came online, sent data and never ran out."""
    shutil.rmtree(flash / "state", ignore_errors=True)
    shutil.rmtree(flash / "buffer", ignore_errors=True)
    (flash / "fake_reset").unlink(missing_ok=True)
    done = subprocess.run(
        [micropython, "-X", f"heapsize={heap_kb}k", "main.py"], cwd=flash,
        env={**os.environ, "MICROPYPATH": str(flash / "lib"),
             "MK_FAKE_STEPS": str(STEPS)},
        capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    ok = (done.returncode == 0 and "online, 0 buffered" in out and "Wi-Fi up" in out
          and "MemoryError" not in out and "crashed" not in out)
    return ok, out


def smallest_heap(micropython: str, flash: Path) -> int:
    low, high = 8, 256  # KB: fails at low (checked), works at high (checked)
    if not boots(micropython, flash, high)[0]:
        raise SystemExit(f"does not run even in {high} KB:\n{boots(micropython, flash, high)[1]}")
    while high - low > 1:
        mid = (low + high) // 2
        if boots(micropython, flash, mid)[0]:
            high = mid
        else:
            low = mid
    return high


def main() -> int:
    env = testbed.load_env()
    micropython = testbed.micropython_path()
    if env is None or micropython is None:
        print("テスト用サービスがありません / no test services: "
              "sudo machikit dev services up", file=sys.stderr)
        return 2
    mqtt_url = env["MACHIKIT_TEST_MQTT_URL"]
    print(f"firmware heap (MicroPython unix port, {STEPS} main-loop rounds, all .mpy "
          "except main.py)")
    for name, (app, scenario) in APPS.items():
        with tempfile.TemporaryDirectory(prefix="machikit-heap-") as tmp:
            flash = Path(tmp)
            build_flash(flash)
            write_config(flash, mqtt_url, app, scenario)
            need = smallest_heap(micropython, flash)
            print(f"  {name:8} smallest heap that runs: {need} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
