"""取り忘れブザー (printer buzzer: paper left on the tray) on a Raspberry Pi, with gpiozero.

The same device as firmware/apps/printer_app.py (town X2's buzzer), the same logic
(machikit/printer_logic.PaperWatch) and the same events:
paper_arrived, paper_alarm (s), paper_taken (s), silenced, and once a day the readings
papers_arrived, paper_alarms, papers_taken, paper_longest_wait.

Wiring (BCM numbers, defaults of /etc/machikit/printer.toml):
    sensor  GPIO 4   LDR + 1 µF capacitor (gpiozero.LightSensor: a Pi has no ADC), or
                     the DO pin of a TCRT5000 module (LOW while it sees paper)
    buzzer  GPIO 18  passive piezo (TonalBuzzer, PWM) or an active buzzer (Buzzer)
    button  GPIO 27  to GND: silences the paper lying there now

PrinterJob does not create any device: run() does, so the tests hand it gpiozero devices
on MockFactory pins and drive the clock themselves.
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

from machikit import printer_logic
from machikit.texts import say
from pi import runtime

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
TONE_HZ = 2700  # most small passive piezo buzzers are loudest around 2.7 kHz
FULL_SCALE = 65535  # the board's read_u16 range: the thresholds mean the same on both
LOOP_S = 0.05  # the beep pattern (200 ms on / 800 ms off) is only as exact as the loop
RESYNC_MS = 1000  # follow the wall clock again when it is this far off (NTP step)
WATCH_KEYS = ("alarm_after_s", "on_threshold", "off_threshold", "debounce_ms")


class PrinterJob:
    """Sensor -> PaperWatch -> buzzer and messages; call step() every ~50 ms.

    sensor    gpiozero LightSensor (value 0 dark .. 1 light) or, with digital=True,
              a DigitalInputDevice whose is_active means "paper seen"
    buzzer    gpiozero TonalBuzzer (play/stop) or Buzzer (on/off)
    button    gpiozero Button or None
    publish   publish(channel, fields): a contract message without v and seq
    clock_ms  monotonic ms; wall_ms  Unix ms or None while the clock is not synced
    settings  PaperWatch's options (alarm_after_s, on_threshold, ...)
    """

    def __init__(self, sensor: Any, buzzer: Any, button: Any, publish: Publish,
                 clock_ms: Callable[[], int], wall_ms: Callable[[], int | None], *,
                 digital: bool = False, tone_hz: int = TONE_HZ, button_debounce_ms: int = 50,
                 boot: int = 0, **settings: Any) -> None:
        self.sensor = sensor
        self.buzzer = buzzer
        self.button = button
        self.publish = publish
        self.clock_ms = clock_ms
        self.wall_ms = wall_ms
        self.digital = digital
        self.tone_hz = tone_hz
        self.button_debounce_ms = button_debounce_ms
        self.boot = boot  # with "sync": false messages (see runtime.boot_number)
        self.watch = printer_logic.PaperWatch(**settings)
        self.offset_ms = 0  # timeline = clock_ms + offset_ms (Unix ms once synced)
        self.synced = False
        self._down_ms: int | None = None
        self._reported = False
        self._buzzing: bool | None = None

    def step(self) -> None:
        now = self._now()
        events = self._read_sensor(now)
        if self._pressed(now):
            events += self.watch.silence(now)
        self._set_buzzer(self.watch.buzzer_on(now))
        for item in events:
            self._send(item)

    def close(self) -> None:
        """Quiet at once: a service that stops must never leave the buzzer sounding."""
        self._set_buzzer(False)

    # --- time ---------------------------------------------------------------

    def _now(self) -> int:
        """One timeline for PaperWatch: monotonic, moved onto Unix ms only while the
        tray is empty and calm, so no waiting time ever straddles a clock step."""
        mono = self.clock_ms()
        wall = self.wall_ms()
        calm = (self.watch.state == printer_logic.EMPTY
                and self.watch._change_ms is None)  # no change half-debounced
        off = wall is not None and abs(wall - (mono + self.offset_ms)) > RESYNC_MS
        if wall is not None and calm and (off or not self.synced):
            self.offset_ms = wall - mono
            self.synced = True
        return mono + self.offset_ms

    # --- devices ------------------------------------------------------------

    def _read_sensor(self, now: int) -> list[dict]:
        if self.digital:
            return self.watch.update_present(bool(self.sensor.is_active), now)
        return self.watch.update_level(int(self.sensor.value * FULL_SCALE), now)

    def _pressed(self, now: int) -> bool:
        """True once per press, after the contacts have stopped bouncing (like the board's)."""
        if self.button is None or not self.button.is_pressed:
            self._down_ms = None
            self._reported = False
            return False
        if self._down_ms is None:
            self._down_ms = now
        if not self._reported and now - self._down_ms >= self.button_debounce_ms:
            self._reported = True
            return True
        return False

    def _set_buzzer(self, on: bool) -> None:
        if on == self._buzzing:
            return  # only touch the pin when it changes
        self._buzzing = on
        if hasattr(self.buzzer, "play"):  # passive: we make the tone with PWM
            if on:
                self.buzzer.play(self.tone_hz)
            else:
                self.buzzer.stop()
        elif on:
            self.buzzer.on()
        else:
            self.buzzer.off()

    # --- messages -----------------------------------------------------------

    def _send(self, item: dict) -> None:
        log.info(say("pi_job_event", job="printer", event=item["event"],
                     detail=item.get("value", "")))
        for channel, msg in printer_logic.to_messages(0, item):
            self.publish(channel, runtime.stamp(msg, item["t"], self.synced, self.boot))


# --- the real devices --------------------------------------------------------

def build_devices(settings: dict[str, Any]) -> tuple[Any, Any, Any]:
    """gpiozero devices from the [printer] section (pin factory: gpiozero's default)."""
    from gpiozero import Button, Buzzer, DigitalInputDevice, LightSensor, TonalBuzzer
    from gpiozero.tones import Tone

    if settings["sensor"] == "tcrt5000":
        # The module drives DO itself; the pull only decides what a loose wire reads
        # (pull-up + active low: a loose wire reads "no paper", never a false alarm).
        active_low = settings["active_low"]
        sensor = DigitalInputDevice(settings["sensor_pin"], pull_up=active_low)
    else:
        sensor = LightSensor(settings["sensor_pin"])
    if settings["buzzer"] == "passive":
        buzzer = TonalBuzzer(settings["buzzer_pin"],
                             mid_tone=Tone.from_frequency(settings["tone_hz"]))
    else:
        buzzer = Buzzer(settings["buzzer_pin"])
    button = Button(settings["button_pin"]) if settings["button_pin"] else None
    return sensor, buzzer, button


def run(cfg: runtime.JobConfig, publish: Publish | None = None,
        stop: threading.Event | None = None) -> int:
    """`machikit pi run printer`: build the devices, loop until SIGTERM / Ctrl+C.
    publish: None = the job's outbox and MQTT link (runtime.connect)."""
    settings = cfg.settings
    stop = stop or runtime.stop_on_signals("printer")
    publish = publish or runtime.connect(cfg, stop)
    runtime.use_pin_factory(settings["pin_factory"])
    sensor, buzzer, button = build_devices(settings)
    job = PrinterJob(sensor, buzzer, button, publish, runtime.monotonic_ms,
                     runtime.wall_ms, digital=settings["sensor"] == "tcrt5000",
                     tone_hz=settings["tone_hz"], boot=runtime.boot_number(),
                     **{key: settings[key] for key in WATCH_KEYS})
    log.info(say("pi_job_started", job="printer",
                 detail=f"{settings['sensor']} GPIO{settings['sensor_pin']}, "
                        f"{settings['buzzer']} GPIO{settings['buzzer_pin']}"))
    try:
        while not stop.wait(LOOP_S):
            job.step()
    finally:
        job.close()
        for device in (sensor, buzzer, button):
            if device is not None:
                device.close()
    return 0
