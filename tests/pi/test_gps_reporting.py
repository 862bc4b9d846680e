"""pi/gps/reporting.py: every 5 s while moving, every 60 s parked, at once after a turn."""

from pi.gps.nmea import Fix
from pi.gps.reporting import Policy, Reporter

T0 = 1_719_835_200_000  # 2024-07-01 12:00 UTC
METRE = 1 / 111_195  # degrees of latitude


def drive(seconds: int, speed: float | None, headings: dict[int, float] | None = None,
          step: float = 1.0) -> list[Fix]:
    """One fix per step northwards at a steady speed; headings: second -> heading from then on."""
    fixes, heading = [], 0.0
    for i in range(int(seconds / step) + 1):
        t = i * step
        heading = (headings or {}).get(int(t), heading)
        fixes.append(Fix(t_ms=T0 + int(t * 1000), lat=35.0 + (speed or 0.0) * t * METRE,
                         lon=136.0, speed=speed, heading=heading if speed else None))
    return fixes


def published(fixes: list[Fix], policy: Policy | None = None) -> list[float]:
    reporter = Reporter(policy or Policy())
    return [((f.t_ms or 0) - T0) / 1000 for f in fixes if reporter.due(f)]


def test_moving_every_5_seconds() -> None:
    assert published(drive(60, speed=10.0)) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]


def test_a_half_hertz_receiver_moving_every_6_seconds() -> None:
    # the Reno Garmin: a point every 2 s, so the first one 5 s or more after the last report
    assert published(drive(20, speed=10.0, step=2)) == [0, 6, 12, 18]


def test_parked_every_60_seconds() -> None:
    assert published(drive(300, speed=0.3)) == [0, 60, 120, 180, 240, 300]


def test_a_turn_adds_a_point_at_once() -> None:
    assert published(drive(12, speed=8.0, headings={3: 45.0})) == [0, 3, 8]


def test_small_turns_add_up_since_the_last_report() -> None:
    assert published(drive(4, speed=8.0, headings={1: 10.0, 2: 20.0, 3: 30.0})) == [0, 3]


def test_a_turn_across_north_is_the_short_way_round() -> None:
    assert published(drive(4, speed=8.0, headings={0: 350.0, 1: 15.0, 2: 25.0})) == [0, 2]


def test_heading_noise_while_parked_adds_nothing() -> None:
    fixes = drive(59, speed=0.5)
    for i, fix in enumerate(fixes):
        fix.heading = (i * 97) % 360
    assert published(fixes) == [0]


def test_a_receiver_without_speed_is_judged_by_its_positions() -> None:
    assert published(drive(20, speed=None)) == [0]  # standing still
    moving = drive(20, speed=10.0)
    for fix in moving:
        fix.speed = None
    assert published(moving) == [0, 5, 10, 15, 20]


def test_receiver_time_not_the_wall_clock() -> None:
    # all fed at once (a fast replay), an hour apart in receiver time: each one is due
    fixes = [Fix(t_ms=T0 + h * 3_600_000, lat=35.0, lon=136.0, speed=0.0) for h in range(4)]
    assert published(fixes) == [0, 3600, 7200, 10800]


def test_a_fix_without_time_is_never_due_and_a_clock_reset_starts_again() -> None:
    reporter = Reporter()
    assert reporter.due(Fix(lat=35.0, lon=136.0)) is False
    assert reporter.due(Fix(t_ms=T0, lat=35.0, lon=136.0, speed=0.0)) is True
    assert reporter.due(Fix(t_ms=T0 - 1000, lat=35.0, lon=136.0, speed=0.0)) is True


def test_policy_can_be_set_per_vehicle() -> None:
    policy = Policy(moving_s=2.0, parked_s=10.0, parked_speed=3.0, turn_deg=90.0)
    assert published(drive(6, speed=4.0, headings={1: 60.0}), policy) == [0, 2, 4, 6]
    assert published(drive(20, speed=2.5), policy) == [0, 10, 20]
