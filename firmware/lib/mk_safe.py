# mk_safe — keeping a field device reachable when its own code goes wrong.
#
#   guard = mk_safe.BootGuard("/state/boots", limit=3)
#   count = guard.enter_boot(power_on=machine.reset_cause() == machine.PWRON_RESET)
#   if guard.safe:
#       ... connect Wi-Fi + MQTT, send status {"state": "safe_mode"}, listen to cmd; no apps
#   else:
#       ... start the app; after 60 s of normal running or the first message sent:
#       guard.mark_healthy()
#   wdt = mk_safe.Watchdog(lambda ms: machine.WDT(timeout=ms), 8000)
#   while True:
#       ... one round of the main loop ...
#       wdt.feed()
#
# Crash loop: an app that crashes right after start (a bad sensor, a bad setting, a bug in a
# new version) makes the board restart, crash, restart ... and nobody can reach it. So every
# start is counted in a small file BEFORE anything risky runs, and the count goes back to 0
# once the device has run fine. When `limit` starts in a row did not get that far (the
# default: the 3rd one), the device starts in SAFE MODE: no app, only Wi-Fi, MQTT and the
# status message, so it can be fixed remotely (a cmd) or over USB.
#
# A power cut is not a crash: with power_on=True (machine.reset_cause() == PWRON_RESET) the
# count starts again at 1. A bus whose engine is started three times in a minute must not
# end up in safe mode: "never stuck after a power cut" (DESIGN §8). A watchdog reset, a
# machine.reset() after an error, and ESP32 deep-sleep wake-ups do count; call mark_healthy()
# before going to deep sleep.
#
# In safe mode mark_healthy() does NOT reset the count: running fine without the app proves
# nothing about the app. Safe mode ends with clear() (a remote command, or a new firmware /
# config), with a power cycle, or by deleting the file over USB.
#
# MicroPython-safe on purpose: plain classes, %-formatting, no f-strings.

import mk_store

RP2040_MAX_MS = 8300  # machine.WDT on RP2040 cannot wait longer than ~8.3 s
MIN_MS = 1000  # shorter, and a slow flash write or Wi-Fi call could trip it


class BootGuard:
    """Counts starts that did not reach "healthy". `safe` is True in safe mode."""

    def __init__(self, path, limit=3):
        if limit < 2:
            raise ValueError("limit must be at least 2")
        self.path = path
        self.limit = limit
        self.count = 0
        self.safe = False
        self.healthy = False

    def _saved(self):
        # The saved count, 0 if missing or damaged (a damaged file must not cause safe mode).
        # `.new` first: whole and newer if the power went off before the rename.
        for name in (self.path + ".new", self.path):
            text = mk_store.read_checked(name)
            if text is not None:
                try:
                    n = int(text)
                except ValueError:
                    continue
                if n >= 0:
                    return n
        return 0

    def enter_boot(self, power_on=False):
        """Call first thing in main.py. Saves and returns this start's count (1, 2, ...)."""
        self.count = 1 if power_on else self._saved() + 1
        self.safe = self.count >= self.limit
        mk_store.write_atomic(self.path, "%d" % self.count)  # before anything can crash
        return self.count

    def mark_healthy(self):
        """The device runs fine: the next start is a normal one. Writes once per boot."""
        if self.safe or self.healthy:
            return False
        self.healthy = True
        self.count = 0
        mk_store.write_atomic(self.path, "0")
        return True

    def clear(self):
        """Leave safe mode at the next start (a remote command, or a fix over USB)."""
        self.count = 0
        mk_store.write_atomic(self.path, "0")


class Watchdog:
    """machine.WDT with the timeout every port accepts, fed only from the main loop.

    A watchdog restarts the board when the program stops feeding it. Feed it ONLY at the end
    of one round of the main loop: then "fed" means "the loop is going round". Feeding from a
    machine.Timer callback defeats the purpose: the timer interrupt keeps firing while the
    main loop hangs in a socket read, a dead I2C sensor or a deadlock, so the watchdog never
    fires, and the hung board is never restarted.

    Every step in the loop must then finish well within the timeout: give sockets and MQTT
    timeouts of a few seconds, and feed between long steps (Wi-Fi connect, NTP).

    make_wdt(timeout_ms) builds the real one: lambda ms: machine.WDT(timeout=ms).
    Once started, a watchdog cannot be stopped (RP2040, ESP32): start it in main.py only.
    """

    def __init__(self, make_wdt, timeout_ms, max_ms=RP2040_MAX_MS):
        self.timeout_ms = max(MIN_MS, min(int(timeout_ms), max_ms))
        self.clamped = self.timeout_ms != timeout_ms
        self._wdt = make_wdt(self.timeout_ms)
        self.feeds = 0

    def feed(self):
        self._wdt.feed()
        self.feeds += 1
