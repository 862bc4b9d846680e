# 取り忘れブザー (printer buzzer: paper left on the tray) — the pure logic.
#
# A light sensor looks at the printer's output tray. When a printout lies there
# too long, a buzzer beeps until somebody takes it (or presses the button).
# This is the X2 town's device, the one colleagues thanked its builder for.
#
# Two kinds of sensor work:
#   - an LDR (light-dependent resistor) on an ADC pin: update_level(raw, now_ms)
#     with raw = 0..65535 (machine.ADC.read_u16());
#   - a TCRT5000 reflective module on a digital pin: update_present(bool, now_ms)
#     (its DO pin is usually LOW when it sees paper: main.py inverts it).
#
# No pins here: main.py reads the sensor and the button, passes the values
# and the time in, and drives the buzzer with buzzer_on(now_ms).
# Written for MicroPython: plain classes, no typing, times as integer ms.

MIN_SYNCED_MS = 1577836800000  # before 2020 = clock not set by NTP yet
DAY_MS = 86400000
JST = 9  # hours east of UTC

EMPTY = "empty"
PAPER = "paper"
ALARM = "alarm"


def _seconds(ms):
    return (ms + 500) // 1000


class PaperWatch:
    """Paper on the tray -> events, a beeping buzzer, and daily counts.

    alarm_after_s  beep when paper has been lying there this long
    on_threshold   LDR: "paper" when raw differs from the baseline by more than this
    off_threshold  LDR: "empty" again when the difference is below this
                   (the gap between the two is the hysteresis: no chattering)
    direction      LDR: +1 paper raises raw, -1 paper lowers it, 0 either way
    debounce_ms    a change must last this long (a hand's shadow, flicker: ignored)
    baseline_s     time constant of the baseline that follows slow room-light
                   changes (sunlight, dusk); only learnt while the tray is empty
    beep_on_ms, beep_off_ms   the buzzer pattern while alarmed

    Every update_* / silence call returns a list of events (dicts):
      {"event": "paper_arrived", "t": ms}
      {"event": "paper_alarm", "t": ms, "value": waited_s, "unit": "s"}
      {"event": "paper_taken", "t": ms, "value": stayed_s, "unit": "s"}
      {"event": "silenced", "t": ms}
      {"event": "daily_counts", "t": local midnight that began the day (Unix ms),
       "arrived": n, "alarms": n, "taken": n, "longest_wait_s": s}   (once a day)
    "t" is when the change began (before the debounce), so durations are true.
    """

    def __init__(self, alarm_after_s=30, on_threshold=8000, off_threshold=4000,
                 direction=0, debounce_ms=1000, baseline_s=60, beep_on_ms=200,
                 beep_off_ms=800, offset_h=JST):
        self.alarm_after_ms = int(alarm_after_s * 1000)
        self.on_threshold = on_threshold
        self.off_threshold = off_threshold
        self.direction = direction
        self.debounce_ms = debounce_ms
        self.baseline_ms = int(baseline_s * 1000)
        self.beep_on_ms = beep_on_ms
        self.beep_period_ms = beep_on_ms + beep_off_ms
        self.offset_ms = int(offset_h * 3600000)
        self.state = EMPTY
        self.baseline = None  # LDR only: the empty tray's light level
        self._last_ms = None
        self._arrived_ms = 0  # meaningful while paper is on the tray
        self._change_ms = None  # when the sensor started to disagree with the state
        self.silenced = False
        self.day = None
        self.counts = self._zero()

    def _zero(self):
        return {"arrived": 0, "alarms": 0, "taken": 0, "longest_wait_s": 0}

    # --- inputs --------------------------------------------------------------

    def update_level(self, raw, now_ms):
        """One LDR reading (0..65535)."""
        if self.baseline is None:
            self.baseline = raw
        diff = raw - self.baseline
        if self.direction:
            diff = diff * self.direction
        else:
            diff = abs(diff)
        if self.state == EMPTY:
            looks = diff > self.on_threshold
        else:
            looks = diff >= self.off_threshold  # stays paper until clearly back
        if self.state == EMPTY and not looks and self._last_ms is not None:
            # Exponential moving average with a time constant, so it behaves
            # the same whether main.py reads every 50 ms or every 2 s.
            dt = now_ms - self._last_ms
            if dt > 0:
                self.baseline += (raw - self.baseline) * dt / (self.baseline_ms + dt)
        self._last_ms = now_ms
        return self._step(looks, now_ms)

    def update_present(self, present, now_ms):
        """One reading of a digital sensor: True = paper seen."""
        self._last_ms = now_ms
        return self._step(bool(present), now_ms)

    def silence(self, now_ms):
        """The button: no more beeping for the paper lying there now."""
        if self.state == EMPTY or self.silenced:
            return []
        self.silenced = True
        return [{"event": "silenced", "t": now_ms}]

    # --- output --------------------------------------------------------------

    def buzzer_on(self, now_ms):
        """Should the buzzer sound at now_ms? Call it often (e.g. every 50 ms)."""
        if self.state != ALARM or self.silenced or self._change_ms is not None:
            return False  # a hand is taking the paper: quiet at once
        since = now_ms - self._arrived_ms - self.alarm_after_ms
        return since >= 0 and since % self.beep_period_ms < self.beep_on_ms

    # --- the state machine ---------------------------------------------------

    def _step(self, looks, now_ms):
        events = []  # type: list
        self._day(now_ms, events)
        present = self.state != EMPTY
        if looks == present:
            self._change_ms = None  # flicker ended before the debounce: nothing
        else:
            if self._change_ms is None:
                self._change_ms = now_ms
            if now_ms - self._change_ms >= self.debounce_ms:
                self._switch(looks, self._change_ms, events)
                self._change_ms = None
        if self.state == PAPER and now_ms - self._arrived_ms >= self.alarm_after_ms:
            self.state = ALARM
            self.counts["alarms"] += 1
            events.append({"event": "paper_alarm", "t": self._arrived_ms + self.alarm_after_ms,
                           "value": _seconds(now_ms - self._arrived_ms), "unit": "s"})
        return events

    def _switch(self, paper, at_ms, events):
        if paper:
            self.state = PAPER
            self._arrived_ms = at_ms
            self.silenced = False
            self.counts["arrived"] += 1
            events.append({"event": "paper_arrived", "t": at_ms})
            return
        stayed = _seconds(at_ms - self._arrived_ms)
        self.state = EMPTY
        self.counts["taken"] += 1
        self.counts["longest_wait_s"] = max(self.counts["longest_wait_s"], stayed)
        events.append({"event": "paper_taken", "t": at_ms, "value": stayed, "unit": "s"})

    def _day(self, now_ms, events):
        if now_ms < MIN_SYNCED_MS:
            return  # no date without a set clock; counts carry on into the first day
        day = (now_ms + self.offset_ms) // DAY_MS
        if self.day is not None and day > self.day:
            done = {"event": "daily_counts", "t": self.day * DAY_MS - self.offset_ms}
            for key in self.counts:
                done[key] = self.counts[key]
            events.append(done)
            self.counts = self._zero()
        if self.day is None or day > self.day:
            self.day = day


# --- messages (machikit/contract.py) -----------------------------------------

DAILY_READINGS = (
    ("arrived", "papers_arrived", "count"),
    ("alarms", "paper_alarms", "count"),
    ("taken", "papers_taken", "count"),
    ("longest_wait_s", "paper_longest_wait", "s"),
)


def to_messages(seq, item):
    """An event from PaperWatch -> [(channel, message)], seq, seq+1, ... in order."""
    try:
        import contract  # a board: contract.mpy in /lib
    except ImportError:
        from machikit import contract  # a Raspberry Pi or a PC with the repository
    if item["event"] != "daily_counts":
        return [("event", contract.event(seq, item["t"], item["event"], item.get("value"),
                                         item.get("unit")))]
    out = []  # type: list
    for key, sensor, unit in DAILY_READINGS:
        out.append(("reading", contract.reading(seq + len(out), item["t"], sensor,
                                                item[key], unit)))
    return out
