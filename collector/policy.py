"""Publish policy v1: what residents may see on the public map and API.

Safe by default: a device is private unless registered as public, internal
devices (the printer buzzer) never appear, and a vehicle is shown only on duty
(inside its service hours, outside its depot). docs/api.md has the rules and
the settings format; every public endpoint and the live stream go through here.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from collector.settings import Publish
from collector.storage import Device
from machikit.geo import inside_polygon, metres

VEHICLE_KINDS = ("bus", "garbage_truck", "stall")
SENSOR_KINDS = ("snow_gauge", "sensor")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS = re.compile(r"^(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d\d)-(?P<end>\d{1,2}:\d\d)$")


class PolicyError(ValueError):
    """A device's publish settings cannot be understood (the device stays hidden)."""


@dataclass(frozen=True)
class ServiceHours:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after midnight
    end: int  # may be past 24:00 (a night bus until 25:30), or less than start

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        end = self.end if self.end > self.start else self.end + 1440
        if today in self.days and self.start <= minute < end:
            return True
        # the part after midnight of a range that began the day before
        return yesterday in self.days and minute + 1440 < end


@dataclass(frozen=True)
class Area:
    """A depot or other hidden place: a circle or a polygon of (lat, lon)."""

    circle: tuple[float, float, float] | None = None  # lat, lon, radius in metres
    polygon: tuple[tuple[float, float], ...] = ()

    def contains(self, lat: float, lon: float) -> bool:
        if self.circle:
            c_lat, c_lon, radius = self.circle
            return metres((lat, lon), (c_lat, c_lon)) <= radius
        return inside_polygon(lat, lon, self.polygon)


@dataclass(frozen=True)
class DevicePolicy:
    device: Device
    hours: tuple[ServiceHours, ...]  # empty: always in service
    depots: tuple[Area, ...]
    location: tuple[float, float] | None
    stale_after_ms: int
    hide_after_ms: int
    zone: ZoneInfo

    @property
    def is_vehicle(self) -> bool:
        return self.device.kind in VEHICLE_KINDS

    def in_service(self, t_ms: int) -> bool:
        if not self.hours:
            return True
        local = datetime.fromtimestamp(t_ms / 1000, self.zone)
        return any(h.contains(local) for h in self.hours)

    def in_depot(self, lat: float, lon: float) -> bool:
        return any(area.contains(lat, lon) for area in self.depots)

    def shows_fix(self, t_ms: int, lat: float, lon: float, now_ms: int) -> bool:
        """Whether a vehicle's fix may be public: on duty, outside its depot, not too old."""
        return (now_ms - t_ms <= self.hide_after_ms and self.in_service(t_ms)
                and self.in_service(now_ms) and not self.in_depot(lat, lon))

    def shows_track_point(self, t_ms: int, lat: float, lon: float) -> bool:
        return self.in_service(t_ms) and not self.in_depot(lat, lon)

    def shows_reading(self, t_ms: int, now_ms: int) -> bool:
        return now_ms - t_ms <= self.hide_after_ms

    def is_stale(self, t_ms: int, now_ms: int) -> bool:
        return now_ms - t_ms > self.stale_after_ms


def publishable(device: Device) -> bool:
    """Registered public devices of a public kind; internal kinds never."""
    return device.public and device.kind in VEHICLE_KINDS + SENSOR_KINDS


def policy_for(device: Device, defaults: Publish) -> DevicePolicy:
    """The device's policy from its registry settings, raising PolicyError if unreadable."""
    s = device.settings or {}
    vehicle = device.kind in VEHICLE_KINDS
    stale = s.get("stale_after_s", defaults.vehicle_stale_after_s if vehicle
                  else defaults.sensor_stale_after_s)
    hide = s.get("hide_after_s", defaults.vehicle_hide_after_s if vehicle
                 else defaults.sensor_hide_after_s)
    try:
        return DevicePolicy(
            device=device,
            hours=tuple(parse_hours(text) for text in s.get("service_hours", ())),
            depots=tuple(parse_area(area) for area in s.get("depots", ())),
            location=parse_location(s.get("location")),
            stale_after_ms=int(float(stale) * 1000),
            hide_after_ms=int(float(hide) * 1000),
            zone=ZoneInfo(defaults.timezone),
        )
    except (TypeError, ValueError, KeyError) as err:
        raise PolicyError(f"{device.town}/{device.name}: {err}") from err


def parse_hours(text: str) -> ServiceHours:
    """'06:30-21:30', 'mon-fri 06:30-21:30', 'sat,sun 08:00-18:00', '22:00-02:00'."""
    match = HOURS.match(text.strip().lower())
    if not match:
        raise ValueError(f"service_hours {text!r}: use e.g. 'mon-fri 06:30-21:30'")
    start, end = _minutes(match["start"]), _minutes(match["end"])
    if start == end:
        raise ValueError(f"service_hours {text!r}: empty range")
    return ServiceHours(_days(match["days"]), start, end)


def _minutes(hhmm: str) -> int:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    if minutes > 59 or hours * 60 + minutes > 48 * 60:
        raise ValueError(f"time {hhmm!r}")
    return hours * 60 + minutes


def _days(text: str | None) -> frozenset[int]:
    if not text:
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"days {text!r}: use mon,tue,…,sun or mon-fri")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def parse_area(area: dict) -> Area:
    if "polygon" in area:
        points = tuple((float(lat), float(lon)) for lat, lon in area["polygon"])
        if len(points) < 3:
            raise ValueError("a depot polygon needs at least 3 points")
        return Area(polygon=points)
    radius = float(area["radius_m"])
    if radius <= 0:
        raise ValueError("radius_m must be positive")
    return Area(circle=(float(area["lat"]), float(area["lon"]), radius))


def parse_location(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("location must be [lat, lon]")
    return float(value[0]), float(value[1])


def local_time_text(t_ms: int, zone: ZoneInfo) -> str:
    """ISO 8601 in the town's zone, milliseconds included."""
    return datetime.fromtimestamp(t_ms / 1000, zone).isoformat(timespec="milliseconds")


__all__ = ["SENSOR_KINDS", "VEHICLE_KINDS", "DevicePolicy", "PolicyError", "policy_for",
           "publishable"]
