# 取り忘れブザー (printer buzzer: paper left on the tray) — the drivers and the glue around printer_logic.
#
#   from machine import Pin, ADC, PWM
#   sensor = printer_app.Ldr(ADC(Pin(26)))                  # or:
#   sensor = printer_app.Tcrt5000(Pin(15, Pin.IN))
#   buzzer = printer_app.PwmBuzzer(PWM(Pin(16)))             # passive buzzer; or:
#   buzzer = printer_app.PinBuzzer(Pin(16, Pin.OUT))         # active buzzer (has its own tone)
#   button = printer_app.Button(Pin(14, Pin.IN, Pin.PULL_UP))
#   app = printer_app.PrinterApp(sensor, buzzer, button)
#   dev = mk_device.Device(cfg, link, clock, seqs, buf, app.read, print)
#
# DESIGN §8: the pins come in as arguments; this file never imports `machine`, so the
# tests run it on the real MicroPython with fake pins (tests/firmware/fakes).
# Call read(now_ms) often (every 50-100 ms): the buzzer pattern (200 ms on, 800 ms off)
# is only as exact as the loop. MicroPython-safe: no typing, no f-strings, integer ms.

import printer_logic

TONE_HZ = 2700  # most small passive piezo buzzers are loudest around 2.7 kHz
HALF_DUTY = 32768  # duty_u16 50 %: the loudest square wave


class Ldr:
    """LDR + fixed resistor divider on an ADC pin: raw 0..65535 (read_u16)."""

    digital = False

    def __init__(self, adc):
        self.adc = adc

    def value(self):
        return self.adc.read_u16()


class Tcrt5000:
    """TCRT5000 module's DO pin: LOW while it sees paper (active_low=True, the usual board)."""

    digital = True

    def __init__(self, pin, active_low=True):
        self.pin = pin
        self.active_low = active_low

    def value(self):
        return bool(self.pin.value()) != self.active_low


class PwmBuzzer:
    """A passive buzzer on PWM: a tone while on, duty 0 while off (no half-silent hum)."""

    def __init__(self, pwm, freq=TONE_HZ):
        self.pwm = pwm
        self.on = None
        pwm.freq(freq)
        self.set(False)

    def set(self, on):
        if on != self.on:  # only touch the hardware when it changes
            self.pwm.duty_u16(HALF_DUTY if on else 0)
            self.on = on


class PinBuzzer:
    """An active buzzer (it makes its own tone) on a plain output Pin, via a transistor."""

    def __init__(self, pin):
        self.pin = pin
        self.on = None
        self.set(False)

    def set(self, on):
        if on != self.on:
            self.pin.value(1 if on else 0)
            self.on = on


class Button:
    """The silence button to GND with a pull-up; pressed() is True once per press.

    A switch bounces for a few ms: a press counts once the pin has been LOW for
    debounce_ms, and the next press needs a release first."""

    def __init__(self, pin, debounce_ms=50, active_low=True):
        self.pin = pin
        self.debounce_ms = debounce_ms
        self.active_low = active_low
        self.down_ms = None
        self.reported = False

    def pressed(self, now_ms):
        down = bool(self.pin.value()) != self.active_low
        if not down:
            self.down_ms = None
            self.reported = False
            return False
        if self.down_ms is None:
            self.down_ms = now_ms
        if not self.reported and now_ms - self.down_ms >= self.debounce_ms:
            self.reported = True
            return True
        return False


class PrinterApp:
    """Sensor -> printer_logic.PaperWatch -> buzzer; read(now_ms) is mk_device's app_read.

    Returns events (paper_arrived, paper_alarm, paper_taken, silenced) and, once a day,
    the daily counts (papers_arrived, paper_alarms, papers_taken, paper_longest_wait).
    now_ms is handed to PaperWatch: give Unix ms (clock.t()) when you want the daily
    counts at midnight JST; ms since boot work for everything else.
    """

    def __init__(self, sensor, buzzer, button=None, **watch_options):
        self.sensor = sensor
        self.buzzer = buzzer
        self.button = button
        self.watch = printer_logic.PaperWatch(**watch_options)

    def read(self, now_ms):
        if self.sensor.digital:
            events = self.watch.update_present(self.sensor.value(), now_ms)
        else:
            events = self.watch.update_level(self.sensor.value(), now_ms)
        if self.button is not None and self.button.pressed(now_ms):
            events = events + self.watch.silence(now_ms)
        self.buzzer.set(self.watch.buzzer_on(now_ms))
        out = []
        for item in events:
            for channel, msg in printer_logic.to_messages(0, item):
                fields = {}
                for key in msg:  # mk_device adds v, seq and the time itself
                    if key not in ("v", "seq", "t", "boot", "up", "sync"):
                        fields[key] = msg[key]
                out.append((channel, fields))
        return out
