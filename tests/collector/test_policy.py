"""Publish policy v1 rules, one at a time (the API tests check them end to end)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from collector.policy import PolicyError, parse_hours, policy_for, publishable
from collector.settings import Publish
from collector.storage import Device

JST = ZoneInfo("Asia/Tokyo")


def at(text: str) -> datetime:
    """'2026-11-26 23:30' (a Thursday) in Japan time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=JST)


def ms(text: str) -> int:
    return int(at(text).timestamp() * 1000)


def bus(**settings: object) -> Device:
    return Device(1, "muroran", "bus-01", "bus", True, "バス", settings)


@pytest.mark.parametrize(("hours", "moment", "inside"), [
    ("06:30-21:30", "2026-11-26 06:30", True),
    ("06:30-21:30", "2026-11-26 21:30", False),  # the end is not included
    ("22:00-02:00", "2026-11-26 23:59", True),  # across midnight
    ("22:00-02:00", "2026-11-27 01:59", True),
    ("22:00-02:00", "2026-11-27 02:00", False),
    ("06:00-25:30", "2026-11-27 01:00", True),  # a night bus written the Japanese way
    ("mon-fri 07:00-19:00", "2026-11-28 10:00", False),  # Saturday
    ("mon-fri 07:00-19:00", "2026-11-27 10:00", True),  # Friday
    ("fri 22:00-02:00", "2026-11-28 01:00", True),  # Friday night's bus, on Saturday
    ("sat,sun 08:00-18:00", "2026-11-29 12:00", True),
    ("sat-mon 08:00-18:00", "2026-11-30 12:00", True),  # wraps over Sunday
    ("00:00-24:00", "2026-11-26 23:59", True),
])
def test_service_hours(hours: str, moment: str, inside: bool) -> None:
    assert parse_hours(hours).contains(at(moment)) is inside


@pytest.mark.parametrize("bad", ["6-21", "25:00-26:00x", "10:00-10:00", "mo-fr 07:00-19:00",
                                 "07:60-08:00"])
def test_unreadable_hours_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(bad)


def test_depot_circle_and_polygon_hide_the_vehicle() -> None:
    policy = policy_for(bus(depots=[
        {"lat": 42.33, "lon": 140.98, "radius_m": 100},
        {"polygon": [[42.30, 140.90], [42.30, 140.91], [42.31, 140.91], [42.31, 140.90]]},
    ]), Publish())
    now = ms("2026-11-26 12:00")
    assert not policy.shows_fix(now, 42.3305, 140.9805, now)  # ≈ 65 m from the centre
    assert policy.shows_fix(now, 42.3320, 140.9800, now)  # ≈ 220 m away
    assert not policy.shows_fix(now, 42.305, 140.905, now)  # inside the polygon
    assert policy.shows_fix(now, 42.315, 140.905, now)


def test_service_hours_apply_to_the_fix_and_to_now() -> None:
    policy = policy_for(bus(service_hours=["06:30-21:30"]), Publish())
    assert policy.shows_fix(ms("2026-11-26 21:00"), 42.3, 140.9, ms("2026-11-26 21:10"))
    assert not policy.shows_fix(ms("2026-11-26 21:00"), 42.3, 140.9, ms("2026-11-26 21:31"))
    assert not policy.shows_fix(ms("2026-11-26 06:00"), 42.3, 140.9, ms("2026-11-26 06:35"))


def test_stale_then_hidden() -> None:
    policy = policy_for(bus(stale_after_s=60, hide_after_s=600), Publish())
    now = ms("2026-11-26 12:00")
    assert not policy.is_stale(now - 60_000, now)
    assert policy.is_stale(now - 61_000, now)
    assert policy.shows_fix(now - 600_000, 42.3, 140.9, now)
    assert not policy.shows_fix(now - 601_000, 42.3, 140.9, now)
    defaults = policy_for(bus(), Publish())
    assert (defaults.stale_after_ms, defaults.hide_after_ms) == (120_000, 1_800_000)


def test_internal_and_private_devices_are_never_publishable() -> None:
    assert publishable(bus())
    assert not publishable(Device(2, "muroran", "printer-01", "printer_buzzer", True))
    assert not publishable(Device(3, "muroran", "bus-02", "bus", False))
    assert not publishable(Device(4, "muroran", "x", "unknown_kind", True))


@pytest.mark.parametrize("settings", [
    {"service_hours": ["always"]},
    {"depots": [{"lat": 42.3}]},
    {"depots": [{"polygon": [[42.3, 140.9]]}]},
    {"location": [42.3]},
    {"stale_after_s": "soon"},
])
def test_unreadable_settings_raise_policy_error(settings: dict) -> None:
    with pytest.raises(PolicyError, match="bus-01"):
        policy_for(bus(**settings), Publish())
