"""Keep only fixes good enough to show on the town's map.

A receiver reports every second whether it knows where it is or not: before its first fix, in a
tunnel, between tall buildings. Publishing those points would draw a bus driving through houses,
so each fix is checked against the receiver's own quality flags and against the last fix we kept.
"""

import collections
from dataclasses import dataclass

from machikit.geo import LatLon, metres
from pi.gps.nmea import Fix


@dataclass(frozen=True)
class Limits:
    min_sats: int = 4  # fewer satellites cannot give a trustworthy 3D position
    max_hdop: float = 5.0  # above this the position error is tens of metres
    max_speed: float = 55.0  # m/s (≈200 km/h): no town vehicle is that fast, the receiver is wrong
    max_jump_speed: float = 70.0  # m/s implied by distance/time from the last accepted fix
    # After this many jumps in a row, trust the new place: otherwise one bad point that slipped
    # through would reject every later (good) fix for ever.
    relock_after_jumps: int = 10


class QualityFilter:
    """Accepts or rejects fixes one by one, remembering the last accepted one."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.rejected: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self._last: tuple[int, LatLon] | None = None  # time and place of the last accepted fix
        self._jumps_in_a_row = 0

    def check(self, fix: Fix) -> str | None:
        """None if the fix is good (it becomes the last accepted one), else the reason code."""
        reason = self._receiver_reason(fix)
        if reason is None and fix.t_ms is not None and fix.lat is not None and fix.lon is not None:
            reason = self._history_reason(fix.t_ms, (fix.lat, fix.lon))
            if reason is None:
                self._last = (fix.t_ms, (fix.lat, fix.lon))
        if reason is None:
            self.accepted += 1
            self._jumps_in_a_row = 0
        else:
            self.rejected[reason] += 1
        return reason

    def _receiver_reason(self, fix: Fix) -> str | None:
        """What the fix says about itself. Missing sats/HDOP (an RMC-only receiver) is no reason."""
        limits = self.limits
        if fix.t_ms is None:
            return "no_time"
        if fix.lat is None or fix.lon is None:
            return "no_position"
        if fix.valid is False or fix.quality == 0 or fix.mode == 1:
            return "invalid"
        if fix.sats is not None and fix.sats < limits.min_sats:
            return "few_satellites"
        if fix.hdop is not None and fix.hdop > limits.max_hdop:
            return "high_hdop"
        if fix.speed is not None and fix.speed > limits.max_speed:
            return "too_fast"
        return None

    def _history_reason(self, t_ms: int, point: LatLon) -> str | None:
        """How the fix fits the last accepted one: time must go on, and no teleporting."""
        if self._last is None:
            return None
        last_t_ms, last_point = self._last
        if t_ms <= last_t_ms:
            return "time_backwards"
        implied_speed = metres(last_point, point) / ((t_ms - last_t_ms) / 1000)
        if implied_speed > self.limits.max_jump_speed and not self._relock():
            return "jump"
        return None

    def _relock(self) -> bool:
        """Count a jump; True once so many came in a row that the vehicle really is elsewhere."""
        self._jumps_in_a_row += 1
        return self._jumps_in_a_row >= self.limits.relock_after_jumps
