"""The apps' drivers and glue (snow_app, printer_app) on the REAL MicroPython with fake hardware.

The unix port has no Pin/ADC/PWM/UART, so tests/firmware/fakes holds small `machine`,
`onewire` and `ds18x20` modules; the scenario (true distance, true air
temperature, ADC value, UART bytes, button) is set through `machine.scenario`, and the fake
time_pulse_us computes the echo from the TRUE speed of sound 331.3·√(1+T/273.15), not from the
app's code. apps_hw_runner.py passes now_ms itself (100 ms steps): nothing really sleeps.

Heap: `-X heapsize=64k`, as in test_apps_logic.py. The apps, the logic and contract.py are
compiled by mpy-cross (what a board gets): compiling snow_app.py from source inside 64 KB
next to the runner fails with MemoryError (measured), and a board never compiles them itself.
The runner and the fakes are compiled too (the runner runs with -m): compiling them in the
process took the rest of the 64 KB.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import mpy_cross
from tests.firmware.test_apps_logic import compile_contract

APPS = REPO / "firmware" / "apps"
FAKES = Path(__file__).with_name("fakes")
RUNNER = Path(__file__).with_name("apps_hw_runner.py")
HEAP = "64k"
MODULES = ("snow_logic", "printer_logic", "snow_app", "printer_app")

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def cases(micropython: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("mpy")
    compile_contract(folder)
    for name in MODULES:
        home = REPO / "machikit" if name.endswith("_logic") else APPS
        mpy_cross(home / f"{name}.py", folder / f"{name}.mpy")
    for source in [RUNNER, *FAKES.glob("*.py")]:
        mpy_cross(source, folder / f"{source.stem}.mpy")
    proc = subprocess.run([micropython, "-X", f"heapsize={HEAP}", "-m", RUNNER.stem],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MICROPYPATH": str(folder)},
                          cwd=folder)  # not the repository: its machikit/ is source
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return {line.pop("case"): line for line in lines}


def names(events: list[dict]) -> list[list]:
    return [[e["event"], e["at"], e.get("value")] for e in events]


# --- printer -------------------------------------------------------------------------

def test_paper_left_60_s_beeps_through_the_pwm_then_is_taken(cases: dict) -> None:
    got = cases["printer_alarm"]
    assert names(got["events"]) == [
        ["paper_arrived", 1000, None],  # after the 1 s debounce
        ["paper_alarm", 30000, 30],
        ["paper_taken", 61000, 60],  # 60 s on the tray (known after the debounce)
    ]
    assert all(e["ch"] == "event" and "t" not in e for e in got["events"])  # mk_device stamps
    # PWM duty non-zero 200 ms of every 1000 ms from 30 s until the hand takes the paper.
    assert got["beeps_first"] == [30000, 30100, 31000, 31100, 32000]
    assert got["beeps_last"] == [59000, 59100]
    assert got["beeps"] == 60
    assert got["duty_after"] == 0
    assert got["freq"] == 2700


def test_silence_button_stops_the_beeping_for_that_paper_only(cases: dict) -> None:
    got = cases["printer_silence"]
    assert got["before"] == [30000, 30100]
    # Pressed at 35.0 s, believed after the 50 ms debounce: quiet from 35.1 s on.
    assert got["in_silence"] == [35000]
    assert got["after"] == [100000, 100100, 101000]  # the next paper beeps again
    assert ["silenced", 35100, None] in names(got["events"])
    assert names(got["events"])[-1] == ["paper_taken", 121000, 50]
    assert got["duty_after"] == 0


def test_button_debounce_counts_one_press_per_push(cases: dict) -> None:
    # Bouncing 0-40 ms, down from 40 ms: one press at 90 ms; released, pushed again: one more.
    assert cases["button_bounce"]["presses"] == [90, 330]


def test_tcrt5000_and_active_buzzer_on_a_pin(cases: dict) -> None:
    got = cases["tcrt_pin_buzzer"]
    assert got["events"] == [["paper_arrived", 2000], ["paper_alarm", 6000],
                             ["paper_taken", 10000]]
    assert got["first_high"] == [6000, 6100]
    assert got["high"] == 6  # 6.0-6.1, 7.0-7.1, 8.0-8.1 s; quiet once the hand is there
    assert got["after"] == 0


# --- snow ----------------------------------------------------------------------------

def test_jsn_sr04t_cold_depth_is_35_cm(cases: dict) -> None:
    """-10 °C, true depth 35 cm, mount 200 cm: 35 ± 1 cm, reference, via trigger/echo."""
    got = cases["snow_jsn"]
    value, quality = got["depth"]
    assert abs(value - 35) <= 1 and quality == "reference"
    assert got["problems"] == []
    assert got["triggers"] == got["pulses"] == 5  # one 10 µs trigger per echo measured
    out = dict((fields["sensor"], fields["value"]) for ch, fields in got["out"])
    assert out == {"air_temp": -10.0, "snow_depth": value, "battery": 3.63}
    assert got["at"] == 1200  # 750 ms DS18B20 conversion, then 5 pings one per loop step
    # Without the thermometer, assuming 20 °C: about 9 cm wrong. With none at all: no depth.
    assert 35 - cases["snow_jsn_uncompensated"]["depth"][0] > 8
    assert cases["snow_jsn_no_thermometer"]["result"] == [None, ["no_temperature"]]


def test_calibration_sets_the_mount_height_from_a_known_depth(cases: dict) -> None:
    got = cases["snow_calibrate"]
    assert abs(got["before"][0] - 30) <= 1  # 200 - 170: the config's height is 18 cm off
    assert len(got["out"]) == 1
    channel, fields = got["out"][0]
    assert (channel, fields["event"], fields["unit"]) == ("event", "snow_calibrated", "cm")
    assert abs(fields["value"] - 182) <= 1  # 170 cm to the snow + 12 cm of snow
    assert got["saved"] == [fields["value"]] and got["mount"] == fields["value"]
    assert abs(got["after"][0] - 12) <= 1  # measurements use the new height at once
    failed = cases["snow_calibrate_no_echo"]
    assert failed["out"] == [["event", {"event": "snow_problem", "text": "calibration_failed"}]]
    assert failed["mount"] == got["mount"]  # kept


def test_absorbed_echo_is_a_problem_not_a_depth(cases: dict) -> None:
    got = cases["snow_absorbed"]
    assert got["result"] == [None, ["no_echo"]]
    assert got["pulses"] == 5


def test_a02yyuw_uart_depth_and_checksum(cases: dict) -> None:
    # The module's own mm are taken as they are (the assumption in snow_app.A02yyuw).
    assert cases["snow_a02"] == {"result": [[35.0, "reference"], []], "bad_frames": 0}
    # Damaged frames are skipped, not read as 30 cm: the depth stays right.
    assert cases["snow_a02_checksum"]["result"] == [[35.0, "reference"], []]
    assert cases["snow_a02_checksum"]["bad_frames"] == 2
    assert cases["snow_a02_all_bad"]["result"] == [None, ["no_echo"]]
    assert cases["snow_a02_resync"] == {"first": None, "second": 124.0}


def test_one_measurement_a_minute(cases: dict) -> None:
    got = cases["snow_schedule"]
    assert got["made"] == [[1200, 2], [61200, 2], [121200, 2], [181200, 2]]
    assert got["pulses"] == 20


def test_heap_does_not_grow(cases: dict) -> None:
    got = cases["heap"]
    assert got["measured"]
    assert got["growth"] <= 64
    assert got["free"] > 8000


def test_apps_do_not_import_machine_at_the_top() -> None:
    for name in ("snow_app", "printer_app"):
        source = (APPS / f"{name}.py").read_text()
        top = [line for line in source.splitlines() if line.startswith(("import", "from"))]
        assert not any("machine" in line for line in top), top
