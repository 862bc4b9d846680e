"""pi/printer.py on gpiozero's MockFactory: the same scenarios as the board's
(tests/firmware/test_apps_hw.py) with the same events, times and beep pattern.

The clock is the test's (100 ms steps, like the board runner), so a minute of paper on
the tray takes no real time. The LDR is a plain value holder standing in for
gpiozero.LightSensor.value: a real LightSensor needs real time to charge its capacitor.
"""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Button, Buzzer, Device, DigitalInputDevice, LightSensor, TonalBuzzer
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from gpiozero.tones import Tone

from pi import printer
from pi.config import JobConfig

BASE = 1795650000000  # Unix ms of the test's "t = 0" (a synced wall clock)
STEP = 100
EMPTY, PAPER = 30000 / 65535, 12000 / 65535  # the board test's ADC values


def _mock(pin_class: type) -> Iterator[MockFactory]:
    Device.pin_factory = mock = MockFactory(pin_class=pin_class)
    yield mock
    mock.reset()
    Device.pin_factory = None


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """PWM-capable mock pins (a passive buzzer's TonalBuzzer needs PWM)."""
    yield from _mock(MockPWMPin)


@pytest.fixture
def plain() -> Iterator[MockFactory]:
    """Plain on/off mock pins."""
    yield from _mock(MockPin)


class Ldr:
    value = EMPTY


class Run:
    """A PrinterJob on mock pins, stepped with the test's clock."""

    def __init__(self, sensor: Any, buzzer: Any, button: Any = None, wall: bool = True,
                 **settings: Any) -> None:
        self.t = -10000
        self.wall: int | None = BASE if wall else None
        self.sent: list[dict] = []
        self.tone_hz = None
        self.job = printer.PrinterJob(sensor, buzzer, button, self.publish, lambda: self.t,
                                      self.wall_ms, **settings)

    def wall_ms(self) -> int | None:
        return None if self.wall is None else self.wall + self.t

    def publish(self, channel: str, fields: dict) -> None:
        self.sent.append({**fields, "ch": channel, "at": self.t})

    def until(self, end: int, each: Any) -> list[int]:
        """Step to `end`; each(t) sets the inputs; returns the times the buzzer sounded."""
        sounding = []
        while self.t < end:
            each(self.t)
            self.job.step()
            if self.job.buzzer.is_active:
                sounding.append(self.t)
            self.t += STEP
        return sounding


def names(sent: list[dict]) -> list[list]:
    return [[e["event"], e["at"], e.get("value")] for e in sent]


def printer_run(factory: MockFactory, press: tuple[int, int] | None = None,
                papers: tuple = ((0, 60000),), end: int = 70000) -> tuple[Run, list[int]]:
    ldr = Ldr()
    button = Button(14)
    run = Run(ldr, TonalBuzzer(16, mid_tone=Tone.from_frequency(2700)), button,
              alarm_after_s=30)
    pin = factory.pin(14)

    def inputs(t: int) -> None:
        if t == 30100:  # sounding since the 30.0 s step
            run.tone_hz = factory.pin(16).frequency
        ldr.value = PAPER if any(a <= t < b for a, b in papers) else EMPTY
        if press and press[0] <= t < press[1]:
            pin.drive_low()  # the button to GND, pull-up: LOW = pressed
        else:
            pin.drive_high()

    return run, run.until(end, inputs)


def test_paper_left_60_s_beeps_through_the_pwm_then_is_taken(factory: MockFactory) -> None:
    run, beeps = printer_run(factory)
    assert names(run.sent) == [
        ["paper_arrived", 1000, None],  # after the 1 s debounce
        ["paper_alarm", 30000, 30],
        ["paper_taken", 61000, 60],  # 60 s on the tray (known after the debounce)
    ]
    # The Pi keeps the true times (when the change began), in Unix ms.
    assert [e["t"] - BASE for e in run.sent] == [0, 30000, 60000]
    assert all(e["ch"] == "event" and "v" not in e and "seq" not in e for e in run.sent)
    assert run.sent[1]["unit"] == "s"
    assert beeps[:5] == [30000, 30100, 31000, 31100, 32000]
    assert beeps[-2:] == [59000, 59100]
    assert len(beeps) == 60
    pwm = factory.pin(16)
    assert run.tone_hz == pytest.approx(2700) and pwm.state == 0
    # The pin's own history: 30 beeps, each a half-duty tone and then silence.
    changes = [state.state for state in pwm.states[1:]]
    assert changes.count(0.5) == 30 and changes[-2:] == [0.5, 0]


def test_silence_button_stops_the_beeping_for_that_paper_only(factory: MockFactory) -> None:
    run, beeps = printer_run(factory, press=(35000, 35300),
                             papers=((0, 60000), (70000, 120000)), end=125000)
    assert [b for b in beeps if b < 35000][:2] == [30000, 30100]
    # Pressed at 35.0 s, believed after the 50 ms debounce: quiet from 35.1 s on.
    assert [b for b in beeps if 35000 <= b < 70000] == [35000]
    assert [b for b in beeps if b >= 70000][:3] == [100000, 100100, 101000]
    assert ["silenced", 35100, None] in names(run.sent)
    assert names(run.sent)[-1] == ["paper_taken", 121000, 50]
    assert factory.pin(16).state == 0


def test_tcrt5000_and_active_buzzer_on_a_pin(plain: MockFactory) -> None:
    do_pin = plain.pin(15)
    buzzer_pin = plain.pin(17)
    sensor = DigitalInputDevice(15, pull_up=True)  # DO is LOW while it sees paper
    run = Run(sensor, Buzzer(17), digital=True, alarm_after_s=5)
    run.t = 0

    def inputs(t: int) -> None:
        do_pin.drive_low() if 1000 <= t < 9000 else do_pin.drive_high()

    high = run.until(12000, inputs)
    assert [[e["event"], e["at"]] for e in run.sent] == [
        ["paper_arrived", 2000], ["paper_alarm", 6000], ["paper_taken", 10000]]
    assert high[:2] == [6000, 6100]
    assert len(high) == 6  # 6.0-6.1, 7.0-7.1, 8.0-8.1 s; quiet once the hand is there
    assert buzzer_pin.state is False
    assert [state.state for state in buzzer_pin.states[1:]] == [True, False] * 3


def test_room_light_changes_and_a_passing_hand_do_not_trigger(factory: MockFactory) -> None:
    ldr = Ldr()
    run = Run(ldr, Buzzer(17))

    def dusk(t: int) -> None:
        # The room darkens by 15000 over 10 minutes (more than on_threshold in total,
        # but slowly: the baseline follows), and a hand's shadow passes for 0.5 s.
        ldr.value = (30000 - 15000 * max(0, t) / 600000) / 65535
        if 300000 <= t < 300500:
            ldr.value = PAPER

    assert run.until(600000, dusk) == []
    assert run.sent == []


def test_daily_counts_at_midnight_jst(factory: MockFactory) -> None:
    midnight = 1795705200000  # 2026-11-27 00:00 JST
    ldr = Ldr()
    run = Run(ldr, Buzzer(17), alarm_after_s=30)
    run.wall = midnight - 60000

    def paper(t: int) -> None:
        ldr.value = PAPER if 0 <= t < 40000 else EMPTY

    run.until(70000, paper)
    daily = {e["sensor"]: e for e in run.sent if e["ch"] == "reading"}
    assert {k: v["value"] for k, v in daily.items()} == {
        "papers_arrived": 1, "paper_alarms": 1, "papers_taken": 1, "paper_longest_wait": 40}
    assert {v["t"] for v in daily.values()} == {midnight - 86400000}  # the day that ended
    assert daily["paper_longest_wait"]["unit"] == "s"


def test_unsynced_clock_sends_sync_false_and_a_clock_step_changes_no_duration(
        factory: MockFactory) -> None:
    ldr = Ldr()
    run = Run(ldr, Buzzer(17), wall=False, alarm_after_s=30)
    run.until(3000, lambda t: setattr(ldr, "value", PAPER if t >= 0 else EMPTY))
    assert run.sent[0] == {"event": "paper_arrived", "sync": False, "boot": 0, "up": 0,
                           "ch": "event", "at": 1000}
    run.wall = BASE  # NTP sets the clock while paper lies there: not followed yet
    run.until(20000, lambda t: None)
    assert len(run.sent) == 1  # no early alarm from the jump
    run.until(40000, lambda t: setattr(ldr, "value", EMPTY if t >= 35000 else PAPER))
    assert names(run.sent)[1:] == [["paper_alarm", 30000, 30], ["paper_taken", 36000, 35]]
    run.until(45000, lambda t: None)  # empty and calm: now on the wall clock
    assert run.job.synced and run.job.offset_ms == BASE


def test_run_builds_gpiozero_devices_and_stops_quietly(factory: MockFactory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pi.config.STATE_DIR", tmp_path)  # the boot counter goes here
    settings = {"sensor": "tcrt5000", "sensor_pin": 4, "active_low": True,
                "buzzer": "passive", "buzzer_pin": 18, "tone_hz": 2700, "button_pin": 27,
                "alarm_after_s": 30.0, "on_threshold": 8000, "off_threshold": 4000,
                "debounce_ms": 1000, "pin_factory": ""}
    sensor, buzzer, button = printer.build_devices(settings)
    assert isinstance(sensor, DigitalInputDevice) and isinstance(buzzer, TonalBuzzer)
    assert isinstance(button, Button)
    for device in (sensor, buzzer, button):
        device.close()
    ldr_settings = {**settings, "sensor": "ldr", "buzzer": "active", "button_pin": 0}
    sensor, buzzer, button = printer.build_devices(ldr_settings)
    assert isinstance(sensor, LightSensor) and isinstance(buzzer, Buzzer) and button is None
    sensor.close()
    buzzer.close()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    cfg = JobConfig("printer", Path("printer.toml"), settings=settings)
    assert printer.run(cfg, lambda channel, fields: None, stop) == 0
    assert factory.pin(18).state == 0


def test_messages_pass_the_outbox_contract_check(factory: MockFactory, tmp_path: Path) -> None:
    from pi.outbox import Outbox

    box = Outbox(tmp_path / "printer-outbox.sqlite3")
    stored = []
    for wall in (True, False):  # with "t", and with "sync": false + boot + up
        ldr = Ldr()
        run = Run(ldr, Buzzer(17 if wall else 18), wall=wall, alarm_after_s=5)
        run.job.publish = lambda channel, fields: stored.append(box.put(channel, fields))
        run.until(20000, lambda t, ldr=ldr: setattr(ldr, "value",
                                                     PAPER if 0 <= t < 9000 else EMPTY))
    # box.put raises on a message that breaks the contract: all six went in.
    assert [m["event"] for m in stored] == ["paper_arrived", "paper_alarm", "paper_taken"] * 2
    assert "t" in stored[0] and stored[3]["sync"] is False and "boot" in stored[3]
