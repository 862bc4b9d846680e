# A fake `machine` module for the MicroPython unix port (which has no Pin, ADC, PWM,
# UART). Put this folder first on MICROPYPATH. The test controls it through `scenario`:
#
#   import machine
#   machine.scenario.adc[26] = 30000        # what ADC(26).read_u16() returns
#   machine.scenario.pins[14] = 0           # what Pin(14).value() reads (inputs)
#   machine.scenario.distance_cm = 165      # the true distance under the ultrasonic sensor
#   machine.scenario.air_c = -10            # the true air temperature (speed of sound)
#   machine.scenario.echo = False           # powder snow: no echo comes back
#   machine.scenario.uart_rx += b"..."      # bytes the UART will give to read()
#
# Only what the apps use is here; it records what the apps do (scenario.log).
import math
import os as _os
import sys as _sys


class Scenario:
    def __init__(self):
        self.reset()

    def reset(self):
        self.adc = {}
        self.pins = {}
        self.distance_cm = 200.0
        self.air_c = 20.0
        self.echo = True
        self.ds_present = True  # False: the DS18B20 is not found (a cut wire)
        self.uart_rx = b""
        self.triggers = 0  # complete 10 µs trigger pulses (high then low) seen
        self.pulses = 0  # time_pulse_us calls
        self.pwm = {}  # pin id -> {"freq": hz, "duty": duty_u16}
        self.outputs = {}  # pin id -> last value written


scenario = Scenario()


def _id(pin):
    return pin.id if isinstance(pin, Pin) else pin


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.id in scenario.outputs and self.mode == Pin.OUT:
                return scenario.outputs[self.id]
            return scenario.pins.get(self.id, 0)
        v = 1 if v else 0
        if scenario.outputs.get(self.id) == 1 and v == 0:
            scenario.triggers += 1  # a falling edge ends a trigger pulse
        scenario.outputs[self.id] = v
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class ADC:
    def __init__(self, pin, atten=None):
        self.id = _id(pin)

    def read_u16(self):
        return scenario.adc.get(self.id, 0)


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.id = _id(pin)
        scenario.pwm[self.id] = {"freq": 0, "duty": 0}
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, hz=None):
        if hz is None:
            return scenario.pwm[self.id]["freq"]
        scenario.pwm[self.id]["freq"] = hz

    def duty_u16(self, duty=None):
        if duty is None:
            return scenario.pwm[self.id]["duty"]
        scenario.pwm[self.id]["duty"] = duty

    def deinit(self):
        scenario.pwm[self.id]["duty"] = 0


class UART:
    def __init__(self, id, baudrate=9600, **kwargs):
        self.id = id
        self.baudrate = baudrate

    def any(self):
        return len(scenario.uart_rx)

    def read(self, n=None):
        if not scenario.uart_rx:
            return None  # like the real UART: None when nothing waits
        if n is None:
            n = len(scenario.uart_rx)
        data = scenario.uart_rx[:n]
        scenario.uart_rx = scenario.uart_rx[n:]
        return data


def speed_of_sound(temp_c):
    """The TRUE speed of sound in m/s (the physics, not the app's code)."""
    return 331.3 * math.sqrt(1 + temp_c / 273.15)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    """The echo pin's HIGH time: there and back at the true speed of sound, whole µs.

    -2 (no pulse began before the timeout) when no echo comes back or it is too far."""
    scenario.pulses += 1
    if not scenario.echo:
        return -2
    us = int(scenario.distance_cm * 20000 / speed_of_sound(scenario.air_c) + 0.5)
    if us > timeout_us:
        return -1
    return us


# --- for main.py (tests/firmware/test_main.py) -------------------------------------------
# The board's flash is the current folder. A file there stands in for what survives a reset:
#   fake_scenario.json   read once at import: {"adc": {"26": 30000}, "distance_cm": 150, ...}
#                        sets `scenario` (a null ADC value makes the app crash: garbage in)
#   fake_reset           the reset cause machine.reset() leaves for the next start (no file:
#                        a power-on start, as after a power cut)
# MK_FAKE_STEPS=n in the environment: the n-th WDT.feed() (= the n-th main-loop round) ends
# the process with exit code 0, so main.py needs no test hooks.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
_RESET_FILE = "fake_reset"


def _load_scenario(path="fake_scenario.json"):
    import json

    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        return  # no file: the scenario as the other tests know it
    for key in data:
        value = data[key]
        if key == "adc":
            value = {int(k): value[k] for k in value}
        setattr(scenario, key, value)


_load_scenario()


def reset_cause():
    try:
        with open(_RESET_FILE) as f:
            return int(f.read())
    except (OSError, ValueError):
        return PWRON_RESET


def reset():
    with open(_RESET_FILE, "w") as f:
        f.write(str(HARD_RESET))
    print("fake machine: reset")
    _sys.exit(3)


def deepsleep(ms=0):
    # The board powers down and starts again from main.py after `ms`: here the process ends
    # and the next one (the test starts it) reads DEEPSLEEP_RESET. RAM is lost, flash stays.
    with open(_RESET_FILE, "w") as f:
        f.write(str(DEEPSLEEP_RESET))
    print(f"fake machine: deepsleep {ms} ms")
    _sys.exit(4)


def unique_id():
    return b"\xe6\x61\x38\x00\x00\x00\x00\x01"


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.stop_after = int(_os.getenv("MK_FAKE_STEPS") or 0)
        print(f"fake machine: WDT timeout {timeout} ms")

    def feed(self):
        self.feeds += 1
        if self.stop_after and self.feeds >= self.stop_after:
            print(f"fake machine: stop after {self.feeds} loop rounds")
            _sys.exit(0)
