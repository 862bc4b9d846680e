"""pi/snow.py on gpiozero's MockFactory and a fake 1-Wire folder: the board's snow scenarios
(tests/firmware/test_apps_hw.py) with the same readings, events and `quality: reference`.

The echo comes from the TRUE speed of sound 331.3·√(1+T/273.15), not from the code under
test. gpiozero's MockTriggerPin times the echo with sleep(), which overshoots by
70-200 µs here (1-3 cm); ExactEchoPin holds it with a spin wait instead, exact to a few
µs. The pings happen in real time (60 ms apart), so each measurement takes ~0.4 s.
"""

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockTriggerPin

from machikit import snow_logic
from pi import snow

pytestmark = pytest.mark.filterwarnings("ignore::gpiozero.PWMSoftwareFallback",
                                        "ignore::gpiozero.DistanceSensorNoEcho")
BASE = 1795650000000
W1_SLAVE = "a0 ff 4b 46 7f ff 0c 10 1c : crc=1c YES\na0 ff 4b 46 7f ff 0c 10 1c t={milli}\n"


def true_echo_s(distance_cm: float, air_c: float) -> float:
    return 2 * distance_cm / 100 / (331.3 * math.sqrt(1 + air_c / 273.15))


class ExactEchoPin(MockTriggerPin):
    def _echo(self) -> None:
        time.sleep(0.001)
        self.echo_pin.drive_high()
        began = self.echo_pin._last_change  # the time the rising edge was stamped with
        while time.monotonic() - began < self.echo_time:
            pass
        self.echo_pin.drive_low()


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    Device.pin_factory = mock = MockFactory()
    yield mock
    mock.reset()
    Device.pin_factory = None


def gauge(factory: MockFactory, distance_cm: float, air_c: float,
          echo: bool = True) -> snow.EchoSensor:
    """JSN-SR04T on TRIG 23 / ECHO 24 looking at a surface distance_cm away."""
    echo_pin = factory.pin(24)
    listening = echo_pin if echo else factory.pin(25)  # powder snow: nothing comes back
    factory.pin(23, pin_class=ExactEchoPin, echo_pin=listening,
                echo_time=true_echo_s(distance_cm, air_c))
    return snow.EchoSensor(24, 23, max_distance=5)


def set_distance(factory: MockFactory, distance_cm: float, air_c: float,
                 echo: bool = True) -> None:
    trigger = factory.pin(23, pin_class=ExactEchoPin)
    trigger.echo_time = true_echo_s(distance_cm, air_c)
    trigger.echo_pin = factory.pin(24 if echo else 25)


def w1(folder: Path, milli: int = -10000, name: str = "28-0316a27960ff") -> Path:
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "w1_slave").write_text(W1_SLAVE.format(milli=milli))
    return folder


class Sent(list):
    def __call__(self, channel: str, fields: dict) -> None:
        self.append((channel, fields))


def job(ranger: Any, thermometer: Any, **options: Any) -> tuple[snow.SnowJob, Sent]:
    sent = Sent()
    made = snow.SnowJob(ranger, thermometer, sent, lambda: 0, lambda: BASE,
                        **{"mount_cm": 200, **options})
    return made, sent


def depth_of(out: list) -> tuple[list | None, list[str]]:
    depth, problems = None, []
    for channel, fields in out:
        if channel == "reading" and fields["sensor"] == "snow_depth":
            depth = [fields["value"], fields["quality"]]
        if channel == "event" and fields["event"] == "snow_problem":
            problems.append(fields["text"])
    return depth, problems


def test_cold_depth_is_35_cm_and_20_c_would_be_9_cm_wrong(factory: MockFactory,
                                                          tmp_path: Path) -> None:
    """-10 °C, true depth 35 cm, mount 200 cm: 35 ± 1 cm, reference."""
    ranger = gauge(factory, 200 - 35, -10)
    gauge_job, sent = job(ranger, snow.Thermometer(w1(tmp_path)))
    gauge_job.step()
    depth, problems = depth_of(sent)
    assert depth is not None and abs(depth[0] - 35) <= 1 and depth[1] == "reference"
    assert problems == []
    assert {f["sensor"]: f["value"] for _c, f in sent} == {"air_temp": -10.0,
                                                          "snow_depth": depth[0]}
    assert all(f["t"] == BASE and "v" not in f and "seq" not in f for _c, f in sent)
    assert ranger.speed_of_sound == pytest.approx(325.2, abs=0.1)  # set from the air
    # The same echoes without the thermometer, assuming 20 °C: about 9 cm wrong.
    blind, sent = job(ranger, None, fallback_temp_c=20)
    blind.step()
    uncompensated = depth_of(sent)[0]
    assert uncompensated is not None and 35 - uncompensated[0] > 8
    # With no temperature at all: no depth, a problem instead.
    nothing, sent = job(ranger, snow.Thermometer(tmp_path / "none"))
    nothing.step()
    assert depth_of(sent) == (None, ["no_temperature"])


def test_absorbed_echo_is_a_problem_not_a_depth(factory: MockFactory, tmp_path: Path) -> None:
    ranger = gauge(factory, 165, -10, echo=False)
    gauge_job, sent = job(ranger, snow.Thermometer(w1(tmp_path)))
    gauge_job.step()
    assert depth_of(sent) == (None, ["no_echo"])


def test_calibration_sets_the_mount_height_and_saves_it(factory: MockFactory,
                                                        tmp_path: Path) -> None:
    """Configured at 200 cm but really at 182 cm, over 12 cm of snow, at -8 °C."""
    ranger = gauge(factory, 170, -8)
    state = tmp_path / "state" / "snow-state.json"
    gauge_job, sent = job(ranger, snow.Thermometer(w1(tmp_path, -8000)), state_path=state)
    gauge_job.step()
    before = depth_of(sent)[0]
    assert before is not None and abs(before[0] - 30) <= 1  # 18 cm off
    sent.clear()
    gauge_job.calibrate(12)
    gauge_job.step()  # at once, not after the 60 s interval
    assert len(sent) == 1
    channel, fields = sent[0]
    assert (channel, fields["event"], fields["unit"]) == ("event", "snow_calibrated", "cm")
    assert abs(fields["value"] - 182) <= 1
    assert json.loads(state.read_text()) == {"mount_cm": fields["value"]}
    assert snow.load_mount(state, 200) == fields["value"]  # what the next start uses
    # The new height is used at once; like on the board, the 18 cm step is a "jump"
    # until confirm_n (3) measurements agree on it.
    found = []
    for _ in range(3):
        sent.clear()
        gauge_job.next_ms = None
        gauge_job.step()
        found.append(depth_of(sent))
    assert found[:2] == [(None, ["jump"])] * 2
    after = found[2][0]
    assert after is not None and abs(after[0] - 12) <= 1
    set_distance(factory, 170, -8, echo=False)  # powder snow: the old height stays
    sent.clear()
    gauge_job.calibrate(0)
    gauge_job.step()
    assert [f for _c, f in sent] == [{"event": "snow_problem", "text": "calibration_failed",
                                      "t": BASE}]
    assert gauge_job.gauge.mount_cm == fields["value"]


class FakeRanger:
    """Echo times from the true speed of sound, without pins or real time."""

    def __init__(self, distance_cm: float, air_c: float) -> None:
        self.distance_cm, self.air_c, self.calls = distance_cm, air_c, 0

    def echoes(self, count: int, temp_c: float, timeout_s: float) -> list[float | None]:
        self.calls += 1
        return [true_echo_s(self.distance_cm, self.air_c) * 1e6] * count


class FixedThermometer:
    def read(self) -> float:
        return -10.0


def test_one_measurement_a_minute_and_hourly_reference_values(tmp_path: Path) -> None:
    ranger = FakeRanger(165, -10)
    clock = {"mono": 0, "wall": BASE - BASE % 3600000 + 3000000}  # 10 min to the hour
    sent = Sent()
    gauge_job = snow.SnowJob(ranger, FixedThermometer(), sent,  # type: ignore[arg-type]
                             lambda: clock["mono"], lambda: clock["wall"], mount_cm=200)
    for _ in range(20):
        for _ in range(10):  # ten loop steps per minute
            gauge_job.step()
            clock["mono"] += 6000
            clock["wall"] += 6000
    assert ranger.calls == 20
    hourly = [f for c, f in sent if c == "reading" and f["sensor"] == "snow_depth_1h"]
    assert len(hourly) == 1 and hourly[0]["quality"] == "reference"
    assert abs(hourly[0]["value"] - 35) <= 1 and hourly[0]["t"] % 3600000 == 0


def test_unsynced_clock_sends_sync_false() -> None:
    sent = Sent()
    gauge_job = snow.SnowJob(FakeRanger(165, -10), FixedThermometer(),  # type: ignore[arg-type]
                             sent, lambda: 4242, lambda: None, mount_cm=200)
    gauge_job.step()
    assert sent and all(f["sync"] is False and f["up"] == 4242 and f["boot"] == 0
                        and "t" not in f
                        for _c, f in sent)


def test_thermometer_files(tmp_path: Path) -> None:
    assert snow.Thermometer(w1(tmp_path / "a", 1250)).read() == 1.25
    bad_crc = w1(tmp_path / "b")
    slave = next(bad_crc.glob("28-*")) / "w1_slave"
    slave.write_text(slave.read_text().replace("YES", "NO"))
    assert snow.Thermometer(bad_crc).read() is None
    assert snow.Thermometer(w1(tmp_path / "c", 85000)).read() is None  # power-on value
    newer = tmp_path / "d" / "28-00000aaaa"
    newer.mkdir(parents=True)
    (newer / "temperature").write_text("-10000\n")  # newer kernels: just millidegrees
    assert snow.Thermometer(newer.parent).read() == -10.0
    two = w1(w1(tmp_path / "e", 5000, "28-aaa"), -3000, "28-bbb")
    assert snow.Thermometer(two, "28-bbb").read() == -3.0
    assert snow.Thermometer(two, "28-ccc").read() is None


def test_state_file_problems_fall_back_to_the_config(tmp_path: Path) -> None:
    assert snow.load_mount(tmp_path / "missing.json", 200.0) == 200.0
    (tmp_path / "bad.json").write_text("{not json")
    assert snow.load_mount(tmp_path / "bad.json", 200.0) == 200.0


def test_models_match_the_logic() -> None:
    assert snow.MODELS["jsn-sr04t"] == snow_logic.JSN_SR04T
