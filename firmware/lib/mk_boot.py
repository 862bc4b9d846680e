# mk_boot — the wiring main.py needs: pins from config.json (defaults from hardware/pins.md),
# the app object, the reset cause as a word, and the log line format.
#
# Kept out of main.py so main.py reads as the list of steps a board goes through at start.
# `machine` is imported inside the functions (DESIGN §8: the apps never import it; here it is
# only needed once the board really builds its app).
#
# MicroPython-safe: plain functions, %-formatting, no f-strings.

import os
import sys
import time

import mk_store

# The mount height measured by a calibration command: it wins over config.json's mount_cm.
MOUNT_FILE = "state/mount_cm"

# hardware/pins.md: the default pin of each signal, per board.
PINS = {
    "rp2": {
        "trig": 2, "echo": 3, "uart": 1, "uart_tx": 4, "uart_rx": 5, "ds": 6, "battery": 28,
        "ldr": 26, "tcrt": 15, "buzzer": 16, "button": 14,
    },
    "esp32": {
        "trig": 25, "echo": 26, "uart": 2, "uart_tx": 17, "uart_rx": 16, "ds": 4,
        "battery": 34, "ldr": 36, "tcrt": 27, "buzzer": 18, "button": 19,
    },
}


def log(text):
    # One line, seconds since boot first: enough to read a USB log (no wall clock yet).
    print("[%7.1f] %s" % (time.ticks_ms() / 1000, text))


def ensure_dir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # already there


def reset_name(machine):
    """Why the board started, as the `reset` word of the status message."""
    cause = machine.reset_cause()
    for name, word in (("PWRON_RESET", "power_on"), ("WDT_RESET", "watchdog"),
                       ("HARD_RESET", "hard"), ("SOFT_RESET", "soft"),
                       ("DEEPSLEEP_RESET", "deepsleep")):
        if cause == getattr(machine, name, None):
            return word
    return "other"


def pins(cfg):
    """The board's default pins, with app.pins of config.json on top."""
    board = "esp32" if sys.platform == "esp32" else "rp2"  # the unix port: as a Pico W
    out = dict(PINS[board])
    given = cfg["app"].get("pins")
    if isinstance(given, dict):
        for key in given:
            out[key] = given[key]
    return out


def make_app(cfg, clock):
    """The app named in config.json (app.name: "snow" or "printer"), built on real pins.

    Returns the app object (its read(now_ms) is mk_device's app_read). Raises on wiring
    mistakes: that is a crash boot, counted by BootGuard (safe mode after a few)."""
    name = cfg["app"]["name"]
    if name == "snow":
        return _snow_app(cfg, clock)
    if name == "printer":
        return _printer_app(cfg)
    raise ValueError("app.name must be snow or printer, not %r" % name)


def _snow_app(cfg, clock):
    import ds18x20
    import onewire
    import snow_app
    from machine import ADC, Pin

    settings = cfg["app"]["settings"]
    p = pins(cfg)
    thermo = snow_app.Ds18b20(ds18x20.DS18X20(onewire.OneWire(Pin(p["ds"]))))
    battery = None
    if settings.get("battery_ratio"):  # only when a divider is wired (pins.md)
        battery = snow_app.Battery(ADC(Pin(p["battery"])), ratio=settings["battery_ratio"])
    return snow_app.SnowApp(_distance_sensor(cfg, p), thermo,
                            saved_mount(settings.get("mount_cm", 200)), battery=battery,
                            interval_s=settings.get("interval_s", 60),
                            pings=settings.get("pings", 5), wall=clock.t,
                            on_calibrated=save_mount)


def saved_mount(default):
    """The calibrated mount height (cm) if one was saved, else `default`."""
    text = mk_store.read_checked(MOUNT_FILE)
    try:
        return float(text) if text else default
    except ValueError:
        return default


def save_mount(cm):
    mk_store.write_atomic(MOUNT_FILE, "%.1f" % cm)
    log("取り付け高さを校正しました / mount height calibrated: %.1f cm" % cm)


def calibrate(app, cmd):
    """The calibrate_cm action of a cmd message: {"v":1,"set":{"calibrate_cm":0}} means
    "the snow depth under the sensor is 0 cm now: measure the mount height".

    An action, not a setting: it is taken out of the message (never saved as a setting) and
    must be published NOT retained, or every reconnect would calibrate again."""
    known = cmd["set"].pop("calibrate_cm", None)
    if known is None:
        return
    if not hasattr(app, "calibrate"):
        log("calibrate_cm は積雪計だけです / calibrate_cm: only a snow gauge can calibrate")
    elif not isinstance(known, (int, float)) or isinstance(known, bool) or not 0 <= known <= 500:
        log("calibrate_cm は 0〜500 の数です / calibrate_cm must be a number 0-500: %r"
            % (known,))
    else:
        log("取り付け高さの校正を始めます / calibrating the mount height (depth now %s cm)" % known)
        app.calibrate(known)


def _distance_sensor(cfg, p):
    import snow_app
    from machine import Pin

    if cfg["app"].get("sensor") == "a02yyuw":
        from machine import UART
        return snow_app.A02yyuw(UART(p["uart"], 9600, tx=Pin(p["uart_tx"]),
                                     rx=Pin(p["uart_rx"])))
    # "jsn-sr04t", the kit's default
    return snow_app.JsnSr04t(Pin(p["trig"], Pin.OUT), Pin(p["echo"], Pin.IN))


def _printer_app(cfg):
    import printer_app
    from machine import Pin

    settings = cfg["app"]["settings"]
    p = pins(cfg)
    button = printer_app.Button(Pin(p["button"], Pin.IN, Pin.PULL_UP))
    options = {}
    for key in ("alarm_after_s", "on_threshold", "off_threshold", "debounce_ms"):
        if key in settings:
            options[key] = settings[key]
    return printer_app.PrinterApp(_tray_sensor(cfg, p), _buzzer(cfg, p), button, **options)


def _tray_sensor(cfg, p):
    import printer_app
    from machine import ADC, Pin

    if cfg["app"].get("sensor") == "tcrt5000":
        return printer_app.Tcrt5000(Pin(p["tcrt"], Pin.IN))
    return printer_app.Ldr(ADC(Pin(p["ldr"])))  # "ldr", the kit's default


def _buzzer(cfg, p):
    import printer_app
    from machine import PWM, Pin

    if cfg["app"].get("buzzer") == "active":
        return printer_app.PinBuzzer(Pin(p["buzzer"], Pin.OUT))
    return printer_app.PwmBuzzer(PWM(Pin(p["buzzer"])))  # a passive piezo, the kit's default


def apply_settings(app, settings):
    """Remote settings that an app can take while running; others wait for the next start."""
    if app is None:
        return
    if hasattr(app, "interval_ms"):  # SnowApp
        app.interval_ms = int(settings.get("interval_s", 60) * 1000)
        app.pings = settings.get("pings", app.pings)
    watch = getattr(app, "watch", None)  # PrinterApp's PaperWatch
    if watch is not None:
        if "alarm_after_s" in settings:
            watch.alarm_after_ms = int(settings["alarm_after_s"] * 1000)
        for key in ("on_threshold", "off_threshold", "debounce_ms"):
            if key in settings:
                setattr(watch, key, settings[key])


# --- deep sleep (snow gauge on a battery, ESP32) ---------------------------------------------
AWAKE_MAX_MS = 45000  # no network for this long: sleep anyway, the data waits in flash


def sleep_due(cfg, app, dev, awake_ms):
    """True when a board with app.settings.deep_sleep may power down now: its measurement
    is done and either everything is sent (buffer empty, status acknowledged) or the network
    has been away too long. The flash buffer and the seq file survive deep sleep."""
    if not cfg["app"]["settings"].get("deep_sleep") or app is None:
        return False
    if not hasattr(app, "idle") or not app.idle():
        return False
    sent = dev.buffer.count() == 0 and dev.statuses_sent > 0
    return sent or awake_ms >= AWAKE_MAX_MS


def deep_sleep(machine, app, link, guard, now_ms):
    """Say `offline` (a planned stop: no last will), then power down until the next
    measurement is due. A wake-up starts main.py again with reset cause `deepsleep`."""
    guard.mark_healthy()  # a wake-up is not a crash
    link.close(goodbye=True)
    wait = max(1000, app.next_ms - now_ms)
    log("ディープスリープ %d 秒 / deep sleep for %d s" % (wait // 1000, wait // 1000))
    machine.deepsleep(wait)
