"""The firmware apps' pure logic (snow gauge, printer buzzer) on CPython and the real MicroPython.

apps_runner.py plays field scenarios through machikit/snow_logic.py and printer_logic.py
and prints one JSON line per scenario; the same checks run on three interpreters/builds:
CPython, the MicroPython unix port with the apps as .py source (what a learner copies with
Thonny), and the unix port with everything compiled by mpy-cross (what a board should get).

Heap budget: MicroPython runs get `-X heapsize=64k`. A Pico W has about 150-200 KB free, and
most of it belongs to Wi-Fi, MQTT, the offline store and contract.py; the app logic must fit in
what is left, and a small heap catches a list that grows with every reading. Measured on the
unix port: snow_logic 6.1 KB and printer_logic 4.0 KB resident as .mpy (6.4 / 5.7 KB from
source), about 1.3 KB of state, and zero growth over a long run (test_heap_does_not_grow).
The peak here is compiling this test's runner from source (the whole run needs about 60 KB);
with the runner compiled too, the logic scenarios run in 32 KB and the contract checks in
52 KB. contract.py is always given as .mpy: compiled from source alone it needs more than
64 KB, and a board gets it compiled anyway.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import mpy_cross

LOGIC = REPO / "machikit"  # shared by the firmware and the Pi jobs
RUNNER = Path(__file__).with_name("apps_runner.py")
HEAP = "64k"  # see the module docstring
MODULES = ("snow_logic", "printer_logic")
T0 = 1736895600000  # 2025-01-15 08:00 JST, as in the runner
MIDNIGHT_15 = 1736866800000  # 2025-01-15 00:00 JST = 2025-01-14 15:00 UTC


def compile_contract(folder: Path) -> None:
    (folder / "machikit").mkdir(parents=True)
    for name in ("__init__", "contract"):
        mpy_cross(REPO / "machikit" / f"{name}.py", folder / "machikit" / f"{name}.mpy")


def run_runner(command: list[str], env: dict[str, str]) -> dict[str, dict]:
    proc = subprocess.run([*command, str(RUNNER)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return {line.pop("case"): line for line in lines}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """contract.py and both apps compiled by mpy-cross, as a board gets them."""
    folder = tmp_path_factory.mktemp("mpy")
    compile_contract(folder)
    for name in MODULES:
        mpy_cross(LOGIC / f"{name}.py", folder / f"{name}.mpy")
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the two logic files as source: machikit/ itself also holds contract.py, whose
    source does not fit the small heap (the .mpy is used instead)."""
    folder = tmp_path_factory.mktemp("src")
    for name in MODULES:
        shutil.copy(LOGIC / f"{name}.py", folder)
    return folder


@pytest.fixture(scope="module", params=[
    "cpython",
    pytest.param("micropython", marks=pytest.mark.services),
    pytest.param("micropython-mpy", marks=pytest.mark.services),
])
def cases(request: pytest.FixtureRequest, compiled: Path, sources: Path) -> dict[str, dict]:
    if request.param == "cpython":
        return run_runner([sys.executable], {"PYTHONPATH": f"{sources}{os.pathsep}{REPO}"})
    micropython = request.getfixturevalue("micropython")
    # Source run: the logic as source (found first), contract from the .mpy folder.
    path = str(compiled) if request.param == "micropython-mpy" else f"{sources}:{compiled}"
    return run_runner([micropython, "-X", f"heapsize={HEAP}"], {"MICROPYPATH": path})


# --- snow gauge ----------------------------------------------------------------------

def test_cold_depth_is_right_only_with_temperature_compensation(cases: dict) -> None:
    """-10 °C, true depth 35 cm under a 200 cm mount: reported 35 ± 1 cm."""
    got = cases["snow_cold"]
    assert got["problem"] is None
    assert abs(got["depth"] - 35) <= 1
    assert got["c_0"] == pytest.approx(331.3)
    assert got["c_20"] == pytest.approx(343.2, abs=0.1)
    assert got["c_minus10"] == pytest.approx(325.2, abs=0.1)
    # A fixed 343 m/s misreads 2 m by about 11 cm, and this depth by about 9 cm.
    assert got["fixed_343_error_2m"] == pytest.approx(11, abs=0.2)
    assert 35 - got["fixed_343_depth"] > 8


def test_median_ignores_one_wild_ping(cases: dict) -> None:
    got = cases["snow_median"]
    # The wild ping (60 cm) is inside the sensor's range: only the median keeps it out.
    assert (got["depth"], got["problem"], got["pings"]) == (35.0, None, 5)
    assert (got["median_odd"], got["median_even"], got["median_empty"]) == (3, 2.5, None)


def test_missing_or_impossible_echoes_give_a_problem_and_no_depth(cases: dict) -> None:
    got = cases["snow_problems"]
    assert got["absorbed"] == [None, "no_echo"]
    assert got["too_far"] == [None, "out_of_range"]
    assert got["blind_zone"] == [None, "out_of_range"]
    assert got["below_ground"] == [None, "out_of_range"]
    assert got["a02yyuw_close"] == [185.0, None]  # 15 cm is fine for an A02YYUW
    assert got["bare_ground"] == [0.0, None]  # 1 cm "below" ground: clamped, not negative


def test_sudden_jump_is_flagged_then_accepted_after_confirmations(cases: dict) -> None:
    assert cases["snow_jump"]["steps"] == [
        [35.0, None], [35.4, None],
        [None, "jump"], [35.6, None],  # a single spike (a person, a shovel): ignored
        [None, "jump"], [None, "no_echo"], [None, "jump"],  # a new level, a lost ping
        [61.0, None],  # the third agreeing reading is believed (confirm_n=3)
        [61.2, None],
        [None, "jump"],  # and the check now guards the new level
    ]


def test_hourly_value_at_rollover(cases: dict) -> None:
    got = cases["snow_hourly"]
    hour = 3600000
    assert got["hourly"] == [
        # 08:00-08:59 JST, labelled 09:00: median of the last three (30.6, 31.0, 30.8)
        {"event": "hourly", "t": T0 + hour, "depth_cm": 30.8, "change_cm": None, "n": 6},
        # 09:00-09:59: the odd 36.0 among the last three does not become the value
        {"event": "hourly", "t": T0 + 2 * hour, "depth_cm": 32.8, "change_cm": 2.0, "n": 6},
    ]
    assert got["unsynced"] == []  # no hours from a clock that NTP has not set


@pytest.mark.parametrize("pattern", ["uniform", "alternating", "square"])
def test_jitter_never_becomes_snowfall(cases: dict, pattern: str) -> None:
    """Six hours of ±1 cm jitter: no change event; then 3 cm of real snow: exactly one."""
    got = cases["snow_jitter_" + pattern]
    assert got["flagged"] == 0
    assert len(got["hourly"]) == 6
    for depth, change in got["hourly"]:
        assert 34.3 <= depth <= 36.3
        assert change is None or abs(change) <= 2
    assert len(got["changes"]) == 1
    minute, value = got["changes"][0]
    assert minute > got["minutes"]  # only after the real snowfall began
    assert 2 < value <= 5


def test_calibration(cases: dict) -> None:
    assert cases["snow_calibrate"] == {"bare": 198.3, "with_snow": 210.3}
    assert cases["snow_calibrate_refused"] == {"refused": True}


# --- printer buzzer ------------------------------------------------------------------

def test_paper_left_60_s_alarms_then_is_taken(cases: dict) -> None:
    got = cases["printer_alarm"]
    assert got["events"] == [
        {"event": "paper_arrived", "t": 0, "at": 1000},  # known after the 1 s debounce
        {"event": "paper_alarm", "t": 30000, "at": 30000, "value": 30, "unit": "s"},
        {"event": "paper_taken", "t": 60000, "at": 61000, "value": 60, "unit": "s"},
    ]
    # 200 ms on / 800 ms off from the alarm until the hand takes the paper.
    assert got["beeps_first"] == [30000, 30100, 31000, 31100, 32000]
    assert got["beeps_last"] == [59000, 59100]
    assert got["beeps"] == 60
    assert (got["state"], got["buzzer_after"]) == ("empty", False)


def test_room_light_changing_30_percent_in_an_hour_is_not_paper(cases: dict) -> None:
    got = cases["printer_room_light"]
    for name, end in (("brighter", 39000), ("darker", 21000)):
        assert got[name]["events"] == []
        assert got[name]["state"] == "empty"
        assert abs(got[name]["baseline"] - end) < 500  # the baseline followed the room


def test_flicker_shorter_than_debounce_is_ignored(cases: dict) -> None:
    got = cases["printer_flicker"]
    assert (got["events"], got["state"]) == ([], "empty")
    assert got["wrong_direction"] == []  # direction=-1: getting brighter is never paper


def test_silence_button_stops_the_buzzer_for_that_paper_only(cases: dict) -> None:
    got = cases["printer_silence"]
    assert [(e["event"], e["t"]) for e in got["events"]] == [
        ("paper_arrived", 0), ("paper_alarm", 30000), ("silenced", 35000),
        ("paper_taken", 50000), ("paper_arrived", 70000), ("paper_alarm", 100000),
        ("paper_taken", 120000),
    ]
    assert got["before"] == [30000, 30100]
    assert got["in_silence"] == []  # quiet from the press until the paper was taken
    assert got["after"] == [100000, 100100, 101000]  # the next paper beeps again
    assert got["again"] == []


def test_daily_counts_at_midnight_jst(cases: dict) -> None:
    got = cases["printer_daily"]
    assert got["daily"] == [{
        "event": "daily_counts", "t": MIDNIGHT_15,
        "arrived": 2, "alarms": 1, "taken": 2, "longest_wait_s": 45,
    }]  # once, at 00:00 JST, and not again at 00:00 UTC
    assert got["counts"] == {"arrived": 0, "alarms": 0, "taken": 0, "longest_wait_s": 0}


# --- messages, heap, compiling -------------------------------------------------------

def test_messages_pass_the_contract_and_snow_is_reference(cases: dict) -> None:
    checked = cases["messages"]["checked"]
    assert all(line[-1] == "ok" for line in checked), checked
    assert [line[2] for line in checked if line[1].startswith("snow_") and line[0] == "reading"
            ] == ["reference"] * 3
    assert [line[1] for line in checked] == [
        "snow_depth", "snow_depth_1h", "snow_change_1h", "snow_change",
        "paper_arrived", "paper_alarm", "paper_taken", "silenced",
        "papers_arrived", "paper_alarms", "papers_taken", "paper_longest_wait",
    ]


def test_heap_does_not_grow(cases: dict) -> None:
    got = cases["heap"]
    if got["measured"]:  # MicroPython only: CPython has no gc.mem_alloc
        assert got["growth"] <= 64
        assert got["free"] > 16000


def test_mpy_cross_compiles_both_apps(tmp_path: Path) -> None:
    for name in MODULES:
        mpy_cross(LOGIC / f"{name}.py", tmp_path / f"{name}.mpy")
        assert (tmp_path / f"{name}.mpy").stat().st_size > 1000


def test_the_apps_import_no_hardware_and_no_contract() -> None:
    """Pure logic: importing it needs neither `machine` nor contract.py."""
    for name in MODULES:
        source = (LOGIC / f"{name}.py").read_text()
        assert "import machine" not in source
        top = [line for line in source.splitlines() if line.startswith(("import", "from"))]
        assert top in ([], ["import math"]), top
