# mk_clock — the time a machikit device puts on its messages.
#
#   clock = mk_clock.Clock(time.ticks_ms, time.time, mk_clock.epoch_offset_s(time.gmtime),
#                          boot=seqs.boot)
#   ... in the main loop (after Wi-Fi is up):
#   clock.poll(ntptime.settime)      # syncs at once, then every `resync_h` hours
#   msg = contract.reading(seq, clock.t(), ..., boot=..., up=...)  or use clock.stamp()
#
# Why a clock object and not time.time():
# - A board has no battery-backed clock. Until NTP has answered, time.time() says 2000 or
#   1970. A message stamped like that would be stored at a wrong time (or refused as
#   `time_too_old`). So before the first NTP success we send what the contract calls an
#   unsynced stamp: {"sync": false, "boot": <boot counter>, "up": <ms since boot>}; the
#   collector estimates the time from when it receives it (docs/protocol.md).
# - time.time() has whole seconds. After a sync we count milliseconds with ticks_ms from the
#   moment of the sync, so `t` has ms steps, and resync every few hours (a board's crystal
#   drifts by seconds a day).
# - An NTP failure (no answer, UDP lost) keeps what we had: a clock that was synced stays
#   synced (it is only a little older), an unsynced one stays unsynced. We try again after
#   10 s, 20 s, 40 s ... up to 30 minutes, so a dead NTP server is not hammered.
#
# EPOCH: MicroPython's time.time() counts from 1970 on some ports (unix, and newer builds of
# several others) and from 2000-01-01 on others (ESP32, and Pico W builds of many versions).
# The contract wants Unix ms (from 1970). Pass `epoch_offset_s`: 0 for 1970, EPOCH_2000 for
# 2000. Do not guess from the board name: epoch_offset_s(time.gmtime) asks the running port.
# A wrong offset would be 30 years off; a sync that gives a time before 2020 is treated as a
# failure for that reason (the contract refuses such a `t` anyway).
#
# Ticks: ticks_ms() wraps around every 2**30 ms (about 12.4 days); we add up differences, so
# `up` keeps growing past that as long as the clock is looked at at least every ~6 days
# (poll() in the main loop does).
#
# MicroPython-safe on purpose: integers only (a Pico's float has about 7 digits), no f-strings.

EPOCH_2000 = 946684800  # seconds from 1970-01-01 to 2000-01-01 (UTC)
MIN_SYNCED_MS = 1577836800000  # 2020-01-01: an earlier "synced" time means a broken clock
HOUR_MS = 3600000
_PERIOD = 1 << 30  # ticks_ms() wraps here on MicroPython


def ticks_diff(a, b):
    """time.ticks_diff(a, b) in plain Python (works with fake tick counters in tests)."""
    half = _PERIOD >> 1
    return ((a - b + half) & (_PERIOD - 1)) - half


def epoch_offset_s(gmtime_fn):
    """Seconds to add to this port's time.time() to get Unix time: 0 or EPOCH_2000."""
    return EPOCH_2000 if gmtime_fn(0)[0] == 2000 else 0


class Clock:
    """Unix ms once NTP has answered; "unsynced" stamps until then.

    ticks_ms_fn  time.ticks_ms (or a fake)
    time_fn      time.time: seconds since the port's epoch, read right after ntptime.settime
    epoch_offset_s  see the top of this file
    boot         the boot counter (mk_store.SeqStore.boot), for unsynced stamps
    resync_h     hours between syncs once synced
    retry_ms / retry_max_ms  first wait after a failure, and the longest
    """

    def __init__(self, ticks_ms_fn, time_fn, epoch_offset_s=0, boot=0, resync_h=6,
                 retry_ms=10000, retry_max_ms=1800000):
        self.ticks_ms = ticks_ms_fn
        self.time = time_fn
        self.offset_ms = epoch_offset_s * 1000
        self.boot = boot
        self.resync_ms = resync_h * HOUR_MS
        self.retry_ms = retry_ms
        self.retry_max_ms = retry_max_ms
        self.synced = False
        self.failures = 0  # NTP failures in a row (for the status message)
        self._last_ticks = ticks_ms_fn()
        self._up = 0  # ms since this object was made (= since boot, made early in main.py)
        self._base_unix = 0  # Unix ms at the last sync ...
        self._base_up = 0  # ... and `up` at that moment
        self._next_try = 0  # `up` when poll() should try NTP again

    def up(self):
        """Milliseconds since boot; keeps counting past the ticks_ms wrap-around."""
        now = self.ticks_ms()
        step = ticks_diff(now, self._last_ticks)
        if step > 0:
            self._up += step
        self._last_ticks = now
        return self._up

    def t(self):
        """Unix ms (UTC), or None while not synced."""
        up = self.up()
        if not self.synced:
            return None
        return self._base_unix + (up - self._base_up)

    def stamp(self):
        """The clock fields of a message: {"t": ...} or {"sync": False, "boot": ..., "up": ...}."""
        t = self.t()
        if t is None:
            return {"sync": False, "boot": self.boot, "up": self._up}
        return {"t": t}

    def sync(self, ntp_settime_fn):
        """Ask NTP now (ntptime.settime). True on success; a failure changes nothing but the
        retry time. Never raises: no network is normal for a field device."""
        try:
            ntp_settime_fn()
            unix_ms = (int(self.time()) * 1000) + self.offset_ms
        except Exception:  # OSError (timeout), IndexError/ValueError on a bad reply
            unix_ms = None
        up = self.up()
        if unix_ms is None or unix_ms < MIN_SYNCED_MS:
            self.failures += 1
            wait = self.retry_ms
            for _ in range(self.failures - 1):
                wait *= 2
                if wait >= self.retry_max_ms:
                    break
            self._next_try = up + min(wait, self.retry_max_ms)
            return False
        self._base_unix = unix_ms
        self._base_up = up
        self.synced = True
        self.failures = 0
        self._next_try = up + self.resync_ms
        return True

    def due(self):
        """True when poll() would ask NTP now."""
        return self.up() >= self._next_try

    def poll(self, ntp_settime_fn):
        """Call from the main loop while online: syncs when due. Returns True if it synced."""
        if not self.due():
            return False
        return self.sync(ntp_settime_fn)

    def next_try_in(self):
        """Milliseconds until the next NTP attempt (0: now)."""
        return max(0, self._next_try - self.up())
