"""積雪計 (snow-depth gauge) on a Raspberry Pi: gpiozero DistanceSensor + DS18B20.

The same gauge as firmware/apps/snow_app.py (town X9's), the same logic
(machikit/snow_logic: SnowDepth, HourlyDepth) and the same messages:
  reading air_temp degC, reading snow_depth cm (quality "reference"),
  event snow_problem (no_echo / out_of_range / jump / no_temperature / calibration_failed),
  hourly readings snow_depth_1h / snow_change_1h and the event snow_change,
  event snow_calibrated (value = the new mount height, cm).

参考値: a home-made gauge is not a certified instrument; every depth says "reference".

Wiring (BCM, defaults of /etc/machikit/snow.toml): JSN-SR04T TRIG GPIO 23, ECHO GPIO 24
through a divider (5 V -> 3.3 V); DS18B20 data on GPIO 4 with 4.7 kΩ to 3.3 V and
`dtoverlay=w1-gpio` in /boot/firmware/config.txt (the kernel then reads it for us).
"""

import json
import logging
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero import DistanceSensor

from machikit import snow_logic
from machikit.texts import say
from pi import runtime

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
HC_SR04 = (2, 400)  # cm: the indoor module, for trying the gauge on a desk
MODELS = {"jsn-sr04t": snow_logic.JSN_SR04T, "hc-sr04": HC_SR04}
GPIOZERO_SOUND = 343.26  # m/s, gpiozero's own default (20 °C)


class EchoSensor(DistanceSensor):
    """A DistanceSensor that also keeps every ping's echo time in µs, misses included.

    gpiozero pings in its own thread (60 ms apart: the JSN-SR04T's ringing dies out) and
    keeps only a smoothed distance; snow_logic wants the single echoes, so it can count
    the missing ones (powder snow swallows them) and take the median itself."""

    def __init__(self, echo: Any, trigger: Any, *, max_distance: float = 5.0,
                 pin_factory: Any = None) -> None:
        self._round = 0
        self._pings: list[float | None] = []
        self._new_ping = threading.Condition()
        super().__init__(echo, trigger, max_distance=max_distance, pin_factory=pin_factory)

    def _read(self) -> float | None:
        round_, speed = self._round, self.speed_of_sound
        value = super()._read()  # a fraction of max_distance (1.0 = that far or more)
        with self._new_ping:
            if round_ == self._round:  # not a ping that began before echoes() was called
                us = None if value is None else value * self.max_distance * 2e6 / speed
                self._pings.append(us)
                self._new_ping.notify_all()
        return value

    def echoes(self, count: int, temp_c: float, timeout_s: float) -> list[float | None]:
        """`count` fresh pings (echo µs or None), measured at the speed of sound of temp_c,
        so `distance` is right for anyone looking at the sensor in a REPL too."""
        with self._new_ping:
            self.speed_of_sound = snow_logic.speed_of_sound(temp_c)
            self._round += 1
            self._pings = []
            self._new_ping.wait_for(lambda: len(self._pings) >= count, timeout_s)
            return (self._pings + [None] * count)[:count]


class Thermometer:
    """DS18B20 through the kernel's 1-Wire driver: <w1_dir>/28-*/w1_slave (or temperature)."""

    def __init__(self, w1_dir: str | Path = "/sys/bus/w1/devices", sensor_id: str = "") -> None:
        self.w1_dir = Path(w1_dir)
        self.sensor_id = sensor_id

    def find(self) -> Path | None:
        if self.sensor_id:
            found = self.w1_dir / self.sensor_id
            return found if found.exists() else None
        return next(iter(sorted(self.w1_dir.glob("28-*"))), None)  # 28 = DS18B20 family

    def read(self) -> float | None:
        """°C, or None (no sensor, CRC error, or 85 °C = the power-on value)."""
        found = self.find()
        if found is None:
            return None
        try:
            if (found / "w1_slave").exists():
                crc, data = (found / "w1_slave").read_text(encoding="ascii").splitlines()[:2]
                if not crc.strip().endswith("YES"):
                    return None  # a bad CRC on a long cable: try again next time
                milli = int(data.rsplit("t=", 1)[1])
            else:
                milli = int((found / "temperature").read_text(encoding="ascii"))
        except (OSError, ValueError, IndexError):
            return None
        return None if milli == 85000 else milli / 1000


class SnowJob:
    """One measurement every interval_s: temperature, `pings` echoes, depth, messages."""

    def __init__(self, ranger: Any, thermometer: Thermometer | None, publish: Publish,
                 clock_ms: Callable[[], int], wall_ms: Callable[[], int | None], *,
                 mount_cm: float, range_cm: tuple[int, int] = snow_logic.JSN_SR04T,
                 pings: int = 5, interval_s: float = 60, fallback_temp_c: float | None = None,
                 state_path: Path | None = None, boot: int = 0) -> None:
        self.ranger = ranger
        self.thermometer = thermometer
        self.publish = publish
        self.clock_ms = clock_ms
        self.wall_ms = wall_ms
        self.gauge = snow_logic.SnowDepth(mount_cm, range_cm=range_cm)
        self.hours = snow_logic.HourlyDepth()
        self.pings = pings
        self.interval_ms = int(interval_s * 1000)
        self.fallback = fallback_temp_c  # None: no temperature -> no depth
        self.state_path = state_path
        self.boot = boot  # with "sync": false messages (see runtime.boot_number)
        self.next_ms: int | None = None
        self.known_cm: float | None = None

    def calibrate(self, known_depth_cm: float = 0) -> None:
        """At the next step, measure the mount height over a surface of known depth
        (0 = bare ground, or the depth a staff member measured with a ruler)."""
        self.known_cm = known_depth_cm
        self.next_ms = None  # now, not at the next interval

    def step(self) -> None:
        now = self.clock_ms()
        if self.next_ms is not None and now - self.next_ms < 0:
            return
        self.next_ms = now + self.interval_ms
        for channel, fields in self.measure():
            self.publish(channel, fields)

    def measure(self) -> list[tuple[str, dict[str, Any]]]:
        temp_c = self.thermometer.read() if self.thermometer else None
        sound_c = temp_c if temp_c is not None else self.fallback
        timeout_s = 0.5 + 0.25 * self.pings  # 60 ms apart, a miss waits 100 ms
        echoes = self.ranger.echoes(self.pings, 20 if sound_c is None else sound_c, timeout_s)
        if self.known_cm is not None:
            return self._stamp(self._calibration(echoes, sound_c))
        out: list[tuple[str, dict[str, Any]]] = []
        if temp_c is not None:
            out.append(_reading("air_temp", round(temp_c, 1), "degC"))
        depth = None
        if sound_c is None:
            out.append(_problem("no_temperature"))
        else:
            got = self.gauge.measure(echoes, sound_c, self.clock_ms())
            depth = got["depth_cm"]
            if got["problem"]:
                out.append(_problem(got["problem"]))
            else:
                out.append(_reading("snow_depth", depth, "cm", quality="reference"))
        out = self._stamp(out)
        wall = self.wall_ms()
        for item in self.hours.add(depth, wall if wall is not None else 0):
            for channel, msg in snow_logic.to_messages(0, item):
                out.append((channel, runtime.stamp(msg, msg["t"], wall is not None,
                                                     self.boot)))
        return out

    def _calibration(self, echoes: list, sound_c: float | None) -> list[tuple[str, dict]]:
        known, self.known_cm = self.known_cm, None
        if sound_c is None:
            return [_problem("no_temperature")]
        try:
            mount = snow_logic.calibrate_mount(echoes, sound_c, known)
        except ValueError:  # too few echoes: keep the old height
            log.warning(say("pi_snow_calibration_failed", mount=self.gauge.mount_cm))
            return [_problem("calibration_failed")]
        self.gauge.mount_cm = mount
        if self.state_path is not None:
            save_mount(self.state_path, mount)
        log.info(say("pi_snow_calibrated", mount=mount, path=self.state_path))
        return [("event", {"event": "snow_calibrated", "value": mount, "unit": "cm"})]

    def _stamp(self, out: list[tuple[str, dict]]) -> list[tuple[str, dict[str, Any]]]:
        wall = self.wall_ms()
        now = self.clock_ms() if wall is None else wall
        return [(channel, runtime.stamp(fields, now, wall is not None, self.boot))
                for channel, fields in out]


def _reading(sensor: str, value: float, unit: str, **extra: str) -> tuple[str, dict]:
    return ("reading", {"sensor": sensor, "value": value, "unit": unit, **extra})


def _problem(code: str) -> tuple[str, dict]:
    return ("event", {"event": "snow_problem", "text": code})


# --- the calibrated mount height survives restarts ------------------------------------

def load_mount(path: Path, default: float) -> float:
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["mount_cm"])
    except FileNotFoundError:
        return default  # never calibrated: the config's height
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning(say("pi_snow_state_unreadable", path=path, detail=error))
        return default


def save_mount(path: Path, mount_cm: float) -> None:
    """Write-then-rename: a power cut leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"mount_cm": mount_cm}) + "\n", encoding="utf-8",
                         newline="\n")
    temporary.replace(path)


# --- the real devices --------------------------------------------------------

def build_job(cfg: runtime.JobConfig, publish: Publish) -> tuple[SnowJob, EchoSensor]:
    settings = cfg.settings
    runtime.use_pin_factory(settings["pin_factory"])
    ranger = EchoSensor(settings["echo_pin"], settings["trigger_pin"],
                        max_distance=settings["max_distance_m"])
    thermometer = Thermometer(settings["w1_dir"], settings["thermometer"])
    if thermometer.find() is None:
        log.warning(say("pi_snow_no_thermometer", path=settings["w1_dir"]))
    state = Path(settings["state"])
    job = SnowJob(ranger, thermometer, publish, runtime.monotonic_ms, runtime.wall_ms,
                  mount_cm=load_mount(state, settings["mount_cm"]),
                  range_cm=MODELS[settings["model"]], pings=settings["pings"],
                  interval_s=settings["interval_s"], state_path=state,
                  boot=runtime.boot_number())
    return job, ranger


def run(cfg: runtime.JobConfig, publish: Publish | None = None,
        stop: threading.Event | None = None, calibrate_cm: float | None = None) -> int:
    """`machikit pi run snow`; with calibrate_cm: one calibration, then exit (0 = done).
    publish: None = the job's outbox and MQTT link (runtime.connect)."""
    warnings.filterwarnings("ignore", module="gpiozero")  # "use pigpio" / each missed echo
    stop = stop or runtime.stop_on_signals("snow")
    publish = publish or runtime.connect(cfg, stop)
    job, ranger = build_job(cfg, publish)
    try:
        if calibrate_cm is not None:
            job.calibrate(calibrate_cm)
            out = job.measure()
            for channel, fields in out:
                publish(channel, fields)
            return 0 if any(f.get("event") == "snow_calibrated" for _c, f in out) else 1
        log.info(say("pi_job_started", job="snow", detail=f"mount {job.gauge.mount_cm} cm"))
        while not stop.is_set():
            job.step()
            stop.wait(0.5)
    finally:
        ranger.close()
        stop.set()  # the forwarder thread says goodbye and ends
    return 0
