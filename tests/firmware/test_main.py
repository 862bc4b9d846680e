"""firmware/main.py, the whole start of a board, on the REAL MicroPython unix port.

MICROPYPATH = tests/firmware/fakes (machine, network, ntptime, onewire, ds18x20 for the
unix port), firmware/lib, firmware/apps, and contract.mpy. The process runs in a temp folder
that stands in for the board's flash (config.json, state/, buffer/). The fakes take the
scenario from fake_scenario.json there, end the process after MK_FAKE_STEPS main-loop rounds
(watchdog feeds), and machine.reset() leaves a `fake_reset` file: the next process is the
board after a reset. The broker and collector are the test bed's real ones.
"""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

import pytest

from machikit import contract
from tests.collector.helpers import clear_retained, credentials, forget_session, publish, unique_town, wait_until
from tests.collector.stacks import Stack, device_stack
from tests.conftest import REPO

pytestmark = pytest.mark.services

MAIN = REPO / "firmware" / "main.py"
# The budget: a Pico W has roughly 160-190 KB free after boot (gc.mem_free(); not measured
# here). The whole firmware as .mpy runs in 115 KB on the 64-bit unix port, whose objects
# are up to twice a 32-bit board's (tools/bench_firmware_heap.py).
HEAP = "144k"
DEVICE = "snow-01"


@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with device_stack(database_url, mqtt_url, DEVICE, "snow_gauge") as s:
        yield s


def write_config(flash: Path, mqtt_url: str, town: str, app: dict) -> None:
    host, port, user, password = credentials(mqtt_url)
    flash.mkdir(exist_ok=True)
    (flash / "config.json").write_text(json.dumps({
        "wifi": {"ssid": "test-ap", "password": "x"},
        "broker": {"host": host, "port": port, "tls": False},
        "device": {"town": town, "name": DEVICE, "user": user, "password": password},
        "app": app,
    }))


def boot(micropython: str, board_dir: Path, flash: Path, steps: int,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """One start of the board: main.py until MK_FAKE_STEPS rounds or a (fake) reset."""
    path = str(board_dir)
    return subprocess.run(
        [micropython, "-X", f"heapsize={HEAP}", str(MAIN)], cwd=flash,
        env={**os.environ, "MICROPYPATH": path, "MK_FAKE_STEPS": str(steps)},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


SNOW = {"name": "snow", "settings": {"interval_s": 10, "status_s": 60, "mount_cm": 200}}


def test_boots_online_and_the_collector_stores_readings(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    flash = tmp_path / "flash"
    write_config(flash, mqtt_url, stack.town, SNOW)
    (flash / "fake_scenario.json").write_text(json.dumps({"distance_cm": 165, "air_c": -5}))
    # 60 rounds of >= 50 ms: the DS18B20 conversion (750 ms) and 5 pings fit in easily.
    done = boot(micropython, board_mpy, flash, steps=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = done.stdout
    assert "fake network: country JP" in out
    assert "WDT timeout 8300 ms" in out
    assert "Wi-Fi up" in out and "clock synced" in out and "app: snow" in out
    assert "running fine" in out  # the first acknowledged message marks the boot healthy
    wait_until(lambda: stack.storage.counts()["readings"] >= 2, 20)
    rows = stack.storage.recent("readings", 10)
    by_sensor = {r["sensor"]: r for r in rows}
    assert by_sensor["snow_depth"]["value"] == pytest.approx(35, abs=1)  # 200 - 165
    assert by_sensor["snow_depth"]["quality"] == "reference"
    assert by_sensor["air_temp"]["value"] == pytest.approx(-5, abs=0.1)
    assert all(r["clock_synced"] for r in rows)
    assert stack.storage.counts()["quarantine"] == 0
    wait_until(lambda: stack.storage.counts()["device_status"] >= 1, 10)
    statuses = stack.storage.recent("device_status", 10)
    assert any(s["state"] == "online" and s["reset_cause"] == "power_on"
               for s in statuses), statuses


def test_no_echo_becomes_an_event_in_the_collector(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    flash = tmp_path / "flash"
    write_config(flash, mqtt_url, stack.town, SNOW)
    (flash / "fake_scenario.json").write_text(json.dumps({"echo": False}))
    done = boot(micropython, board_mpy, flash, steps=60)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: stack.storage.counts()["events"] >= 1, 20)
    events = stack.storage.recent("events", 10)
    assert [(e["event"], e["text"]) for e in events] == [("snow_problem", "no_echo")]


def test_missing_config_keeps_running_and_says_why(
    micropython: str, board_mpy: Path, tmp_path: Path,
) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    done = boot(micropython, board_mpy, flash, steps=10)
    assert done.returncode == 0, done.stdout + done.stderr  # ran its 10 rounds, no crash
    assert "Traceback" not in done.stdout + done.stderr
    assert "まだ設定されていません / not configured (1)" in done.stdout
    assert ("設定ファイル config.json がありません / config: file config.json is missing"
            in done.stdout)
    assert "reset" not in done.stdout.split("not configured")[1]  # no restart


def test_three_crashed_starts_then_safe_mode(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    flash = tmp_path / "flash"
    write_config(flash, mqtt_url, stack.town,
                 {"name": "printer", "settings": {"status_s": 60}})
    # The LDR's ADC gives garbage (None): the app raises in its first round, every start.
    (flash / "fake_scenario.json").write_text(json.dumps({"adc": {"26": None}}))
    for start in (1, 2, 3):
        done = boot(micropython, board_mpy, flash, steps=40)
        assert done.returncode == 3, done.stdout + done.stderr  # the fake machine.reset()
        assert f"start {start} in a row" in done.stdout
        assert "crashed, restarting" in done.stdout and "fake machine: reset" in done.stdout
    assert stack.storage.counts()["readings"] == 0
    done = boot(micropython, board_mpy, flash, steps=40)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "start 4 in a row" in done.stdout
    assert "SAFE MODE: 3 failed starts in a row, the app is not started" in done.stdout
    assert "app: printer" not in done.stdout and "crashed" not in done.stdout

    def safe_status() -> bool:
        return any(s["reset_cause"] == "safe_mode" and s["state"] == "online"
                   for s in stack.storage.recent("device_status", 20))

    assert wait_until(safe_status, 10)
    # A power cut is not a crash: the next start counts from 1 again and runs the app
    # (which crashes again here, but as start 1, far from safe mode).
    (flash / "fake_reset").unlink()
    done = boot(micropython, board_mpy, flash, steps=40)
    assert "start 1 in a row" in done.stdout and "reset=power_on" in done.stdout


def test_remote_settings_and_a_calibration_command_over_the_real_broker(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    """The retained cmd (settings) is taken at the connect; a calibrate_cm action sent while
    the gauge is online measures the mount height, reports it and keeps it after a restart."""
    flash = tmp_path / "flash"
    write_config(flash, mqtt_url, stack.town, SNOW)  # says mount_cm 200 ...
    (flash / "fake_scenario.json").write_text(  # ... but 170 cm to 12 cm of snow: 182 cm
        json.dumps({"distance_cm": 170, "air_c": -8}))
    cmd_topic = contract.topic(stack.town, DEVICE, contract.COMMAND)
    publish(mqtt_url, [(cmd_topic, b'{"v":1,"set":{"pings":3}}')], retain=True)
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(boot, micropython, board_mpy, flash, 200)
            assert wait_until(lambda: stack.storage.counts()["readings"] >= 1, 20)
            publish(mqtt_url, [(cmd_topic, b'{"v":1,"set":{"calibrate_cm":12}}')])
            done = running.result(timeout=90)
    finally:
        clear_retained(mqtt_url, [cmd_topic])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "remote settings: {'pings': 3}" in done.stdout
    assert "calibrating the mount height (depth now 12 cm)" in done.stdout
    assert wait_until(lambda: stack.storage.counts()["events"] >= 1, 10)
    (event,) = [e for e in stack.storage.recent("events", 10) if e["event"] == "snow_calibrated"]
    assert event["value"] == pytest.approx(182, abs=1) and event["unit"] == "cm"
    assert (flash / "state" / "mount_cm").exists()
    # The next start measures from the calibrated height, not config.json's 200 cm.
    before = stack.storage.counts()["readings"]
    again = boot(micropython, board_mpy, flash, steps=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert wait_until(lambda: stack.storage.counts()["readings"] > before, 20)
    depths = [r["value"] for r in stack.storage.recent("readings", 50)
              if r["sensor"] == "snow_depth"]
    assert depths[0] == pytest.approx(12, abs=1), depths  # the newest first


def test_deep_sleep_between_measurements_keeps_numbering_and_says_offline(
    micropython: str, board_mpy: Path, stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    """A battery snow gauge (ESP32, deep_sleep: true): wake, measure, send, say `offline`,
    power down until the next measurement; the next wake-up is a normal start."""
    flash = tmp_path / "flash"
    write_config(flash, mqtt_url, stack.town,
                 {"name": "snow", "settings": {"interval_s": 600, "status_s": 600,
                                               "deep_sleep": True}})
    (flash / "fake_scenario.json").write_text(json.dumps({"distance_cm": 165, "air_c": -5}))
    first = boot(micropython, board_mpy, flash, steps=400)
    assert first.returncode == 4, first.stdout + first.stderr  # the fake machine.deepsleep
    assert "deep sleep for 59" in first.stdout and "fake machine: deepsleep" in first.stdout
    assert wait_until(lambda: stack.storage.counts()["readings"] >= 2, 10)
    second = boot(micropython, board_mpy, flash, steps=400)
    assert second.returncode == 4, second.stdout + second.stderr
    assert "reset=deepsleep, start 1 in a row" in second.stdout  # not counted as a crash
    assert wait_until(lambda: stack.storage.counts()["readings"] >= 4, 10)
    rows = sorted(stack.storage.recent("readings", 10), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == sorted({r["seq"] for r in rows})  # each stored once
    assert len(rows) == 4 and rows[2]["seq"] > rows[1]["seq"]  # numbering went on
    statuses = stack.storage.recent("device_status", 20)
    # A planned stop says `offline` itself (no last will); the wake-up says why it started.
    assert sum(s["state"] == "offline" for s in statuses) >= 1, statuses
    assert any(s["reset_cause"] == "deepsleep" for s in statuses), statuses
