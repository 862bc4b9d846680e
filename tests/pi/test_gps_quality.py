"""pi/gps/quality.py: every reason a fix is dropped, and what it is compared with."""

import dataclasses

import pytest

from pi.gps.nmea import Fix
from pi.gps.quality import Limits, QualityFilter

T0 = 1_719_835_200_000  # 2024-07-01 12:00 UTC
LAT0 = 35.3317
GOOD = Fix(t_ms=T0, lat=LAT0, lon=136.6710, alt=80.0, speed=5.0, heading=90.0, sats=8,
           hdop=1.0, quality=1, mode=3, valid=True)
NORTH_1KM = 1000 / 111_195  # degrees of latitude


def later(seconds: float, north_m: float = 0.0, **changes: object) -> Fix:
    """GOOD, some seconds later and some metres further north."""
    return dataclasses.replace(GOOD, t_ms=T0 + int(seconds * 1000),
                               lat=LAT0 + north_m / 1000 * NORTH_1KM, **changes)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"t_ms": None}, "no_time"),
    ({"lat": None}, "no_position"),
    ({"lon": None}, "no_position"),
    ({"valid": False}, "invalid"),  # RMC status V
    ({"quality": 0}, "invalid"),  # GGA fix quality 0
    ({"mode": 1}, "invalid"),  # GSA: no fix
    ({"sats": 3}, "few_satellites"),
    ({"hdop": 5.1}, "high_hdop"),
    ({"speed": 56.0}, "too_fast"),
])
def test_what_the_fix_says_about_itself(changes: dict, reason: str) -> None:
    quality = QualityFilter()
    assert quality.check(dataclasses.replace(GOOD, **changes)) == reason
    assert quality.rejected == {reason: 1} and quality.accepted == 0


def test_a_good_fix_and_the_limits_themselves_pass() -> None:
    quality = QualityFilter()
    assert quality.check(GOOD) is None
    assert quality.check(later(1, sats=4, hdop=5.0, speed=55.0)) is None
    assert quality.accepted == 2 and not quality.rejected


def test_a_receiver_that_sends_only_rmc_is_not_rejected_for_what_it_does_not_send() -> None:
    rmc_only = Fix(t_ms=T0, lat=35.0, lon=136.0, speed=0.1, valid=True)
    assert QualityFilter().check(rmc_only) is None


def test_time_must_go_forward_from_the_last_accepted_fix() -> None:
    quality = QualityFilter()
    assert quality.check(GOOD) is None
    assert quality.check(GOOD) == "time_backwards"
    assert quality.check(later(-0.3)) == "time_backwards"  # telit-he910.log: .71 s then .408 s
    assert quality.check(later(1)) is None


def test_a_jump_is_measured_from_the_last_accepted_fix_not_the_last_rejected() -> None:
    quality = QualityFilter()
    assert quality.check(GOOD) is None
    assert quality.check(later(1, north_m=1000)) == "jump"  # 1000 m/s
    assert quality.check(later(2, north_m=60)) is None  # 30 m/s from GOOD
    assert quality.check(later(12, north_m=60 + 69 * 10)) is None  # 69 m/s: a fast car, fine
    assert quality.check(later(13, north_m=60 + 69 * 10 + 80)) == "jump"


def test_a_long_gap_is_no_jump() -> None:
    quality = QualityFilter()
    assert quality.check(GOOD) is None
    assert quality.check(later(3600, north_m=50_000)) is None  # receiver off for an hour


def test_after_many_jumps_in_a_row_the_new_place_is_trusted() -> None:
    # one bad point accepted by mistake must not lock the tracker out for ever
    quality = QualityFilter(Limits(relock_after_jumps=3))
    assert quality.check(GOOD) is None
    far = 20_000
    assert [quality.check(later(s, north_m=far + s)) for s in (1, 2, 3, 4)] == \
        ["jump", "jump", None, None]


def test_limits_can_be_set_per_vehicle() -> None:
    strict = QualityFilter(Limits(min_sats=6, max_hdop=2.0, max_speed=20.0))
    assert strict.check(later(0, sats=5)) == "few_satellites"
    assert strict.check(later(0, hdop=2.5)) == "high_hdop"
    assert strict.check(later(0, speed=25.0)) == "too_fast"
    assert strict.rejected == {"few_satellites": 1, "high_hdop": 1, "too_fast": 1}
