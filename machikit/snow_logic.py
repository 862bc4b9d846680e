# 積雪計 (snow-depth gauge) — the pure logic, no hardware.
#
# An ultrasonic sensor (JSN-SR04T or A02YYUW) hangs from a pole at a known
# height and looks down at the snow. It sends a ping and measures how long the
# echo takes to come back (microseconds). This module turns those echo times
# into a snow depth. It never touches a pin: main.py reads the sensor and the
# thermometer and passes the numbers in, together with the time. So the same
# code runs on a Pico W / ESP32, on the unix port in the tests, and on CPython.
#
# 参考値: a home-made gauge is NOT a certified instrument (気象業務法 Art. 6/9).
# Every message built here says quality "reference". Please keep it that way.
#
# Written for MicroPython: plain functions and classes, no typing. Times are
# integers (ms) and never pass through a float: a Pico's float has only ~7
# digits, which is not enough for Unix time in milliseconds.

import math

# Sensor range in cm (closer than the minimum is the "blind zone").
JSN_SR04T = (25, 450)
A02YYUW = (3, 450)

# A clock showing a time before 2020 has not been set by NTP yet (same rule as
# machikit/contract.py). Hour boundaries are only used with a set clock.
MIN_SYNCED_MS = 1577836800000
HOUR_MS = 3600000
JST = 9  # hours east of UTC

# Problem codes: a flagged measurement has no depth, only one of these.
NO_ECHO = "no_echo"  # too few echoes came back (fresh powder snow absorbs them)
OUT_OF_RANGE = "out_of_range"  # echoes in the blind zone, too far, or below ground
JUMP = "jump"  # the depth moved too far at once; waiting for confirmation


def speed_of_sound(temp_c):
    """Speed of sound in air in m/s. About 325 m/s at -10 °C, 343 m/s at 20 °C."""
    return 331.3 * math.sqrt(1 + temp_c / 273.15)


def distance_cm(echo_us, temp_c):
    """One echo time (µs, there and back) -> distance to the surface in cm."""
    # metres per µs = speed / 1e6; halve for the round trip; x100 for cm.
    return echo_us * speed_of_sound(temp_c) / 20000


def median(values):
    """The middle value (mean of the two middle ones for an even count); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    half = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[half]
    return (ordered[half - 1] + ordered[half]) / 2


def _mm(cm):
    """cm -> whole millimetres, so comparisons don't depend on float rounding."""
    return int(round(cm * 10))


def good_distances(echo_us_list, temp_c, low_cm, high_cm):
    """(number of echoes that came back, distances inside low..high cm)."""
    echoes = 0
    inside = []
    for echo in echo_us_list:
        if not echo or echo <= 0:  # None or 0: the driver timed out, no echo
            continue
        echoes += 1
        d = distance_cm(echo, temp_c)
        if low_cm <= d <= high_cm:
            inside.append(d)
    return echoes, inside


def calibrate_mount(echo_us_list, temp_c, known_depth_cm=0, min_pings=3):
    """Mount height in cm from pings over a surface of known depth (0 = bare ground).

    Do this on a calm day with the thermometer next to the sensor."""
    echoes, inside = good_distances(echo_us_list, temp_c, 0, 100000)
    if len(inside) < min_pings:
        raise ValueError("calibration needs at least %d echoes" % min_pings)
    return round(median(inside) + known_depth_cm, 1)


class SnowDepth:
    """Echo times -> a checked snow depth (cm), or a problem code.

    mount_cm    height of the sensor above bare ground (see calibrate_mount)
    range_cm    (min, max) the sensor can measure, e.g. JSN_SR04T or A02YYUW
    max_jump_cm largest believable change between two accepted readings
    confirm_n   a bigger change is believed once this many readings in a row
                agree on the new level (snow removal, a drift, a heavy fall)
    min_pings   at least this many good echoes out of the list given
    ground_cm   an echo this far below the ground still counts as ground
    """

    def __init__(self, mount_cm, range_cm=JSN_SR04T, max_jump_cm=10, confirm_n=3,
                 min_pings=3, ground_cm=5):
        self.mount_cm = mount_cm
        self.min_cm = range_cm[0]
        self.max_cm = range_cm[1]
        self.max_jump_cm = max_jump_cm
        self.confirm_n = confirm_n
        self.min_pings = min_pings
        self.ground_cm = ground_cm
        self.last_cm = None  # the last accepted depth
        self._new_cm = None  # a new level waiting for confirmation
        self._new_n = 0

    def measure(self, echo_us_list, temp_c, now_ms):
        """Returns {"t", "depth_cm", "distance_cm", "pings", "problem"}.

        depth_cm is None whenever problem is set: a flagged value is not a depth."""
        high = min(self.max_cm, self.mount_cm + self.ground_cm)
        echoes, inside = good_distances(echo_us_list, temp_c, self.min_cm, high)
        out = {"t": now_ms, "depth_cm": None, "distance_cm": None,
               "pings": len(inside), "problem": None}
        if echoes < self.min_pings:
            out["problem"] = NO_ECHO
            return out
        if len(inside) < self.min_pings:
            out["problem"] = OUT_OF_RANGE
            return out
        distance = median(inside)  # one wild ping (a snowflake, a bird) cannot move it
        out["distance_cm"] = round(distance, 1)
        depth = max(0.0, round(self.mount_cm - distance, 1))  # settled ground reads -1 cm
        if not self._plausible(depth):
            out["problem"] = JUMP
            return out
        out["depth_cm"] = depth
        return out

    def _plausible(self, depth):
        if self.last_cm is None or abs(depth - self.last_cm) <= self.max_jump_cm:
            self.last_cm = depth
            self._new_n = 0
            return True
        # A jump: count readings in a row that agree with each other.
        if self._new_n and abs(depth - self._new_cm) <= self.max_jump_cm:
            self._new_n += 1
        else:
            self._new_n = 1
        self._new_cm = depth
        if self._new_n >= self.confirm_n:
            self.last_cm = depth
            self._new_n = 0
            return True
        return False


class HourlyDepth:
    """Hourly values like JMA practice, and change events without false snowfall.

    add(depth_cm, now_ms) with every accepted depth (or None after a flagged
    measurement, so the hour still closes on time) returns a list of:

      {"event": "hourly", "t": end of the hour (Unix ms), "depth_cm": value,
       "change_cm": value - previous hour (None if that hour has no value),
       "n": accepted readings in the hour}
      {"event": "snow_change", "t": now_ms, "value": signed change (cm),
       "unit": "cm", "depth_cm": new level}

    Hour value: the median of the last `last_n` (3) accepted readings of the
    hour. JMA labels a snow depth with the hour at its end and takes the value
    at that moment; the last readings are the closest to it, and their median
    keeps one odd reading that passed the plausibility check out of the record.

    Noise rule for change events: the level is the median of the last `window`
    (5) accepted readings, so a change must be seen in 3 of the last 5. It is
    compared with the last reported level, and counts only if it is at least
    change_cm AND more than 2 x noise_cm. Jitter of ±noise_cm keeps every
    reading (and so every median) within noise_cm of the true depth, so two
    levels differ by at most 2 x noise_cm: jitter alone can never make an event.
    """

    def __init__(self, offset_h=JST, change_cm=2, noise_cm=1, last_n=3, window=5):
        self.offset_ms = int(offset_h * HOUR_MS)
        self.change_mm = _mm(change_cm)
        self.noise_mm = _mm(noise_cm)
        self.last_n = last_n
        self.window = window
        self.hour = None  # local hour number of the hour being collected
        self.last = []  # the last accepted depths of that hour (at most last_n)
        self.count = 0
        self.prev = None  # (hour number, value) of the last hourly value
        self.recent = []  # the last accepted depths, for change events
        self.reported_mm = None

    def add(self, depth_cm, now_ms):
        out = []  # type: list
        if now_ms >= MIN_SYNCED_MS:
            self._hour(now_ms, out)
        if depth_cm is None:
            return out
        if self.hour is not None:
            self.last.append(depth_cm)
            if len(self.last) > self.last_n:
                self.last.pop(0)
            self.count += 1
        self._change(depth_cm, now_ms, out)
        return out

    def _hour(self, now_ms, out):
        hour = (now_ms + self.offset_ms) // HOUR_MS
        if hour == self.hour:
            return
        if self.hour is not None and hour > self.hour and self.last:
            value = round(median(self.last), 1)
            change = None
            if self.prev and self.prev[0] == self.hour - 1:
                change = round(value - self.prev[1], 1)
            out.append({"event": "hourly", "t": (self.hour + 1) * HOUR_MS - self.offset_ms,
                        "depth_cm": value, "change_cm": change, "n": self.count})
            self.prev = (self.hour, value)
        # A new hour (or a clock set backwards: that hour's values are dropped).
        self.hour = hour
        self.last = []
        self.count = 0

    def _change(self, depth_cm, now_ms, out):
        self.recent.append(depth_cm)
        if len(self.recent) > self.window:
            self.recent.pop(0)
        if len(self.recent) < self.window:
            return
        level = _mm(median(self.recent))
        if self.reported_mm is None:  # the first level is where we start from
            self.reported_mm = level
            return
        diff = level - self.reported_mm
        if abs(diff) >= self.change_mm and abs(diff) > 2 * self.noise_mm:
            self.reported_mm = level
            out.append({"event": "snow_change", "t": now_ms, "value": diff / 10,
                        "unit": "cm", "depth_cm": level / 10})


# --- messages (machikit/contract.py), every value a reference value -------

def _contract():
    try:
        import contract  # a board: contract.mpy in /lib
    except ImportError:
        from machikit import contract  # a Raspberry Pi or a PC with the repository
    return contract


def depth_message(seq, t, depth_cm):
    """("reading", message) for one accepted depth. t=None: clock not synced."""
    return ("reading", _contract().reading(seq, t, "snow_depth", depth_cm, "cm", "reference"))


def to_messages(seq, item):
    """An item from HourlyDepth.add -> [(channel, message)], seq, seq+1, ... in order."""
    contract = _contract()
    if item["event"] == "hourly":
        out = [("reading", contract.reading(seq, item["t"], "snow_depth_1h",
                                            item["depth_cm"], "cm", "reference"))]
        if item["change_cm"] is not None:
            out.append(("reading", contract.reading(seq + 1, item["t"], "snow_change_1h",
                                                    item["change_cm"], "cm", "reference")))
        return out
    text = "参考値 %.1f cm" % item["depth_cm"]
    return [("event", contract.event(seq, item["t"], item["event"], item["value"],
                                     item["unit"], text))]
