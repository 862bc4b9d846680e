# 積雪計アプリ (snow gauge app) — the drivers and the glue around snow_logic.
#
#   from machine import Pin, ADC, UART
#   import onewire, ds18x20
#   sensor = snow_app.JsnSr04t(Pin(2, Pin.OUT), Pin(3, Pin.IN))        # or:
#   sensor = snow_app.A02yyuw(UART(1, 9600, tx=Pin(4), rx=Pin(5)))
#   thermo = snow_app.Ds18b20(ds18x20.DS18X20(onewire.OneWire(Pin(6))))
#   battery = snow_app.Battery(ADC(Pin(26)), ratio=2)
#   app = snow_app.SnowApp(sensor, thermo, mount_cm=200, battery=battery)
#   dev = mk_device.Device(cfg, link, clock, seqs, buf, app.read, print)
#
# DESIGN §8: the drivers get the pin / bus objects as arguments and never
# import `machine` at the top of the file. So this file imports on a PC, and
# the tests give it fake pins (tests/firmware/fakes) on the real MicroPython.
#
# Non-blocking on purpose: one read(now_ms) call does at most one small thing
# (start a temperature conversion, one ping, read one UART frame) and returns.
# The main loop feeds the watchdog between calls, and the MQTT link stays alive.
#
# 参考値: every depth this app sends says quality "reference" (see snow_logic).
# MicroPython-safe: no typing, no f-strings, integer ms times.

import time

import snow_logic

_sleep_us = getattr(time, "sleep_us", None)


def _pause_us(us):
    # time.sleep_us exists on every MicroPython port; CPython has only sleep().
    if _sleep_us is not None:
        _sleep_us(us)
    else:
        time.sleep(us / 1000000)


class JsnSr04t:
    """JSN-SR04T (waterproof, trigger/echo). Gives the raw echo time in µs.

    trig  an output Pin; echo  an input Pin (5 V module: through a divider, hardware/pins.md)
    time_pulse_us  machine.time_pulse_us (looked up when first needed, so no `machine`
                   import at the top: the tests pass nothing and get the fake module)
    timeout_us  30 ms = about 5 m there and back at -20 °C: longer means no echo
    """

    raw_echo = True  # snow_logic must correct this for the air temperature
    range_cm = snow_logic.JSN_SR04T

    def __init__(self, trig, echo, time_pulse_us=None, timeout_us=30000):
        self.trig = trig
        self.echo = echo
        self.pulse = time_pulse_us
        self.timeout_us = timeout_us
        trig.value(0)

    def ping(self):
        """One echo time in µs, or None (no echo: powder snow absorbed it, or a timeout)."""
        if self.pulse is None:
            from machine import time_pulse_us  # only here: see the class docstring
            self.pulse = time_pulse_us
        self.trig.value(0)
        _pause_us(2)
        self.trig.value(1)
        _pause_us(10)  # the datasheet's trigger: at least 10 µs high
        self.trig.value(0)
        us = self.pulse(self.echo, 1, self.timeout_us)
        # time_pulse_us returns -1 or -2 on a timeout (no pulse, or it never ended).
        return us if us > 0 else None


def a02_frame(mm):
    """The 4 bytes an A02YYUW sends for `mm` (for tests and for checking by hand)."""
    high = (mm >> 8) & 0xFF
    low = mm & 0xFF
    return bytes((0xFF, high, low, (0xFF + high + low) & 0xFF))


class A02yyuw:
    """A02YYUW (DFRobot SEN0311) on a UART, 9600 8N1: frames 0xFF H L SUM, mm = H*256+L.

    ASSUMPTION (not stated in the vendor's protocol page): the module's mm already
    include its own speed-of-sound handling, so we take them as they are and do NOT
    correct them again for the air temperature. If a cold-day check against a ruler
    shows it assumes a fixed speed, give assumed_c=343 (m/s at 20 °C): then the value
    is rescaled with the measured air temperature, exactly like a raw echo.
    """

    raw_echo = False
    range_cm = snow_logic.A02YYUW

    def __init__(self, uart, assumed_c=None):
        self.uart = uart
        self.assumed_c = assumed_c
        self.buf = b""
        self.bad_frames = 0  # checksum errors seen (for the status page and the tests)

    def ping(self):
        """The newest valid distance in cm from what the UART has, or None."""
        data = self.uart.read()
        if data:
            self.buf = (self.buf + data)[-32:]  # keep it small: only the newest frames matter
        found = None
        while len(self.buf) >= 4:
            if self.buf[0] != 0xFF:
                self.buf = self.buf[1:]  # resync on the header byte
                continue
            head, high, low, total = self.buf[0], self.buf[1], self.buf[2], self.buf[3]
            if (head + high + low) & 0xFF != total:
                self.bad_frames += 1
                self.buf = self.buf[1:]  # a damaged frame: skip it, look for the next header
                continue
            found = (high * 256 + low) / 10
            self.buf = self.buf[4:]
        return found

    def to_echo_us(self, cm, temp_c):
        """cm -> the echo time snow_logic expects (so the same checks apply)."""
        if self.assumed_c is None or temp_c is None:
            # "Already right": an echo that gives back exactly `cm` at 20 °C.
            return cm * 20000 / snow_logic.speed_of_sound(20)
        return cm * 20000 / self.assumed_c  # the module's own timing, corrected later


class Ds18b20:
    """DS18B20 through ds18x20.DS18X20(onewire.OneWire(pin)); non-blocking.

    start() begins a conversion; read() after >= 750 ms (12-bit) gives °C or None.
    """

    CONVERT_MS = 750

    def __init__(self, ds):
        self.ds = ds
        self.roms = []

    def start(self):
        try:
            if not self.roms:
                self.roms = self.ds.scan()
            if not self.roms:
                return False
            self.ds.convert_temp()
            return True
        except Exception:  # a loose wire: OneWireError; try again next cycle
            self.roms = []
            return False

    def read(self):
        try:
            temp = self.ds.read_temp(self.roms[0])
        except Exception:  # CRC error or a lost sensor
            self.roms = []
            return None
        if temp is None or temp == 85.0:  # 85 °C = the power-on value: no conversion done
            return None
        return temp


class Battery:
    """Battery voltage on an ADC through a divider: volts = raw / 65535 * vref * ratio."""

    def __init__(self, adc, ratio=2.0, vref=3.3):
        self.adc = adc
        self.ratio = ratio
        self.vref = vref

    def volts(self):
        return round(self.adc.read_u16() * self.vref * self.ratio / 65535, 2)


IDLE = 0
CONVERTING = 1
PINGING = 2


class SnowApp:
    """One measurement every interval_s: temperature, then n pings, one per read() call.

    read(now_ms) is the app_read of mk_device: it returns a list of (channel, fields):
      ("reading", snow_depth cm, quality "reference")      an accepted depth
      ("event", snow_problem, text no_echo/out_of_range/jump/no_temperature)
      ("reading", snow_depth_1h / snow_change_1h)  and ("event", snow_change)  from HourlyDepth
      ("reading", air_temp degC), ("reading", battery V)
    now_ms: ms that only go forwards; hourly values need Unix ms (clock.t()), so give
    wall=clock.t: a function returning Unix ms or None (not synced yet).
    """

    def __init__(self, sensor, thermo, mount_cm, battery=None, interval_s=60, pings=5,
                 ping_gap_ms=60, fallback_temp_c=None, wall=None, on_calibrated=None):
        self.sensor = sensor
        self.thermo = thermo
        self.gauge = snow_logic.SnowDepth(mount_cm, range_cm=sensor.range_cm)
        self.hours = snow_logic.HourlyDepth()
        self.battery = battery
        self.interval_ms = int(interval_s * 1000)
        self.pings = pings
        self.ping_gap_ms = ping_gap_ms  # JSN-SR04T: its ringing must die out between pings
        self.fallback = fallback_temp_c  # None: no temperature -> no depth from raw echoes
        self.wall = wall
        self.state = IDLE
        self.next_ms = None
        self.since_ms = 0
        self.temp_c = None
        self.echoes = []
        self.known_cm = None  # a calibration asked for: the snow depth right now (0 = ground)
        self.on_calibrated = on_calibrated  # called with the new mount height, to save it

    def calibrate(self, known_depth_cm=0):
        """Measure the mount height at the next measurement, over a surface of known depth
        (0 = bare ground). The result replaces mount_cm and is reported as an event."""
        self.known_cm = known_depth_cm
        if self.state == IDLE:
            self.next_ms = None  # now, not at the next interval

    def idle(self):
        """True between measurements (one is done, the next is not due): deep sleep may
        start now without cutting a measurement short."""
        return self.state == IDLE and self.next_ms is not None and self.known_cm is None

    def read(self, now_ms):
        if self.state == IDLE:
            if self.next_ms is not None and now_ms - self.next_ms < 0:
                return []
            self.next_ms = now_ms + self.interval_ms
            self.echoes = []
            self.temp_c = None
            self.since_ms = now_ms
            if self.thermo is not None and self.thermo.start():
                self.state = CONVERTING  # the conversion takes 750 ms: read it next time
            else:
                self.state = PINGING
            return []
        if self.state == CONVERTING:
            if now_ms - self.since_ms < self.thermo.CONVERT_MS:
                return []
            self.temp_c = self.thermo.read()
            self.state = PINGING
            self.since_ms = now_ms - self.ping_gap_ms
        if now_ms - self.since_ms < self.ping_gap_ms:
            return []
        self.since_ms = now_ms
        self._ping()
        if len(self.echoes) < self.pings:
            return []
        self.state = IDLE
        return self._finish(now_ms)

    def _ping(self):
        got = self.sensor.ping()
        if got is not None and not self.sensor.raw_echo:
            got = self.sensor.to_echo_us(got, self.temp_c)
        self.echoes.append(got)

    def _finish(self, now_ms):
        if self.known_cm is not None:
            return self._finish_calibration()
        out = []
        if self.temp_c is not None:
            out.append(("reading", {"sensor": "air_temp", "value": round(self.temp_c, 1),
                                    "unit": "degC"}))
        temp = self._sound_temp()
        if temp is None:
            out.append(_problem("no_temperature"))
            depth = None
        else:
            got = self.gauge.measure(self.echoes, temp, now_ms)
            depth = got["depth_cm"]
            if got["problem"]:
                out.append(_problem(got["problem"]))
            else:
                out.append(("reading", {"sensor": "snow_depth", "value": depth, "unit": "cm",
                                        "quality": "reference"}))
        wall = self.wall() if self.wall else now_ms
        for item in self.hours.add(depth, wall if wall is not None else 0):
            for channel, msg in snow_logic.to_messages(0, item):
                out.append((channel, _fields(msg)))
        if self.battery is not None:
            out.append(("reading", {"sensor": "battery", "value": self.battery.volts(),
                                    "unit": "V"}))
        return out


    def _sound_temp(self):
        # The temperature for the speed of sound, or None when one is needed and missing.
        if self.sensor.raw_echo or getattr(self.sensor, "assumed_c", None):
            return self.temp_c if self.temp_c is not None else self.fallback
        return 20  # the module's cm were turned into echoes at 20 °C: give them back as-is

    def _finish_calibration(self):
        known, self.known_cm = self.known_cm, None
        temp = self._sound_temp()
        if temp is None:
            return [_problem("no_temperature")]
        try:
            mount = snow_logic.calibrate_mount(self.echoes, temp, known)
        except ValueError:  # too few echoes: keep the old height
            return [_problem("calibration_failed")]
        self.gauge.mount_cm = mount
        if self.on_calibrated is not None:
            self.on_calibrated(mount)
        return [("event", {"event": "snow_calibrated", "value": mount, "unit": "cm"})]


def _problem(code):
    return ("event", {"event": "snow_problem", "text": code})


def _fields(msg):
    # mk_device adds v, seq and the time itself (synced or not): drop the logic's copies.
    out = {}
    for key in msg:
        if key not in ("v", "seq", "t", "boot", "up", "sync"):
            out[key] = msg[key]
    return out
