"""Decide which accepted fixes to publish: often while driving, rarely while parked.

A bus standing at the depot for the night does not need a point every 5 seconds (that is mobile
data and database rows for nothing), but a moving one does, and a turn at a crossing should show
on the map at once rather than as a shortcut through the houses on the corner.
"""

from dataclasses import dataclass

from machikit.geo import LatLon, metres
from pi.gps.nmea import Fix

_Place = tuple[int, LatLon]  # receiver time (ms) and position


@dataclass(frozen=True)
class Policy:
    moving_s: float = 5.0  # seconds between points while moving
    parked_s: float = 60.0  # seconds between points while parked
    parked_speed: float = 1.0  # m/s; below this the vehicle counts as parked
    turn_deg: float = 30.0  # heading change since the last report that adds a point (moving only)


class Reporter:
    """Remembers the last published fix and says whether the next accepted one is due."""

    def __init__(self, policy: Policy = Policy()) -> None:
        self.policy = policy
        self._last_report: tuple[int, float | None] | None = None  # its time and heading
        self._previous: _Place | None = None  # the fix before, for receivers that send no speed

    def due(self, fix: Fix) -> bool:
        """True if this accepted fix should be published now (the first always is).

        Time is the receiver's (fix.t_ms), never the wall clock, so a replay at any pace
        publishes the same points as the drive did.
        """
        if fix.t_ms is None:
            return False
        place = None if fix.lat is None or fix.lon is None else (fix.t_ms, (fix.lat, fix.lon))
        speed = fix.speed if fix.speed is not None else _track_speed(self._previous, place)
        self._previous = place
        if not self._is_due(fix.t_ms, fix.heading, speed):
            return False
        self._last_report = (fix.t_ms, fix.heading)
        return True

    def _is_due(self, t_ms: int, heading: float | None, speed: float | None) -> bool:
        if self._last_report is None:
            return True
        last_t_ms, last_heading = self._last_report
        seconds = (t_ms - last_t_ms) / 1000
        if seconds < 0:  # the receiver's clock was reset: start again rather than go silent
            return True
        moving = speed is not None and speed >= self.policy.parked_speed
        if seconds >= (self.policy.moving_s if moving else self.policy.parked_s):
            return True
        return moving and _turn(last_heading, heading) >= self.policy.turn_deg


def _track_speed(before: _Place | None, now: _Place | None) -> float | None:
    """Distance / time between two fixes, for receivers that send no speed (GGA only)."""
    if before is None or now is None or now[0] <= before[0]:
        return None
    return metres(before[1], now[1]) / ((now[0] - before[0]) / 1000)


def _turn(before: float | None, now: float | None) -> float:
    """Smallest angle between two headings, 0 if either is unknown."""
    if before is None or now is None:
        return 0.0
    difference = abs(now - before) % 360
    return min(difference, 360 - difference)
