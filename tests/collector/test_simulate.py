"""The demo town: vehicles on real Muroran streets, checked second by second.

The first tests use the pure "where is it at time t" functions over a whole
round; the last one runs the demo's devices over MQTT into a real server and
reads the public API, as a resident's phone would.
"""

import itertools
import random
import threading
from pathlib import Path
from typing import cast

import httpx
import pytest

from collector.demo import DEPOT_RADIUS_M, TOWN, start_devices, town_devices
from collector.serve import Server
from collector.settings import Settings
from collector.simulate import (
    BUS_BRAKE,
    BUS_CRUISE,
    BUS_DWELL,
    BUS_LAYOVER,
    TRUCK_COLLECT,
    TRUCK_CRUISE,
    TRUCK_DEPOT_WAIT,
    Fix,
    Plan,
    Road,
    bearing,
    bus_plan,
    drive_time,
    driven,
    load_demo_data,
    metres,
    stall_fix,
    truck_plan,
)
from tests.collector.helpers import free_port, wait_until

ROUTE = load_demo_data("muroran-route.json")
TRUCK = load_demo_data("muroran-truck.json")
STEP = 0.25  # seconds between samples


def samples(plan: Plan, start: float = 0.0) -> list[tuple[float, Fix]]:
    """Where the vehicle is every STEP seconds for one whole round."""
    n = int(plan.seconds / STEP)
    return [(start + i * STEP, plan.where(start + i * STEP)) for i in range(n)]


def stays(track: list[tuple[float, Fix]]) -> list[tuple[float, Fix]]:
    """(seconds, place) of each time the vehicle stands still."""
    found = []
    for standing, group in itertools.groupby(track, key=lambda s: s[1].speed < 0.01):
        rows = list(group)
        if standing:
            found.append((rows[-1][0] - rows[0][0] + STEP, rows[0][1]))
    return found


def turn(a: float, b: float) -> float:
    """The angle between two headings, 0–180°."""
    return abs((a - b + 180) % 360 - 180)


# --- the data: a real route ------------------------------------------------------

def test_route_is_a_real_route_with_its_stops_on_the_shape() -> None:
    road = Road(ROUTE["shape"])
    assert ROUTE["licence"] == "CC BY-SA 3.0" and "Code for Muroran" in ROUTE["source"]
    assert road.length == pytest.approx(ROUTE["length_m"], abs=0.1)
    assert 5_000 < road.length < 30_000 and len(ROUTE["stops"]) >= 10
    distances = [stop["distance_m"] for stop in ROUTE["stops"]]
    assert distances == sorted(distances)
    assert distances[0] >= 0 and distances[-1] <= road.length
    for stop in ROUTE["stops"]:
        lat, lon, _ = road.at(stop["distance_m"])
        # the pole stands at the kerb: a few metres from the line, never a block away
        assert metres((lat, lon), (stop["lat"], stop["lon"])) < 15, stop["name"]


def test_distances_along_a_road() -> None:
    # 0.001° of latitude is 111.19 m everywhere
    road = Road([(42.0, 141.0), (42.001, 141.0), (42.001, 141.002)])
    assert road.length == pytest.approx(111.19 + 165.26, abs=0.05)
    lat, lon, heading = road.at(55.6)
    assert (lat, lon, heading) == (pytest.approx(42.0005, abs=1e-6), 141.0, 0.0)
    assert road.at(200)[2] == pytest.approx(90, abs=0.01)  # turned east
    assert road.reversed().at(10)[2] == pytest.approx(270, abs=0.01)
    assert road.at(-5)[:2] == (42.0, 141.0) and road.at(1e6)[:2] == (42.001, 141.002)


def test_driving_speeds_up_cruises_and_brakes() -> None:
    # 1 km at 10 m/s, 1 m/s² both ways: 10 s (50 m) up, 90 s (900 m) at 10 m/s, 10 s down
    assert drive_time(1000, 10, 1, 1) == pytest.approx(110)
    assert driven(5, 1000, 10, 1, 1) == (pytest.approx(12.5), pytest.approx(5))
    assert driven(60, 1000, 10, 1, 1) == (pytest.approx(550), pytest.approx(10))
    assert driven(110, 1000, 10, 1, 1) == (pytest.approx(1000), pytest.approx(0))
    # stops 50 m apart: never reaches 10 m/s
    assert drive_time(50, 10, 1, 1) == pytest.approx(2 * 50**0.5)
    assert max(driven(t / 10, 50, 10, 1, 1)[1] for t in range(150)) < 7.1


def test_truck_path_is_a_street_with_a_depot_at_its_start() -> None:
    road = Road(TRUCK["path"])
    depot = (TRUCK["depot"]["lat"], TRUCK["depot"]["lon"])
    assert road.at(0)[:2] == depot
    assert road.length == pytest.approx(TRUCK["length_m"], abs=0.1)
    assert TRUCK["collection_points_m"][-1] == pytest.approx(road.length, abs=0.1)
    assert TRUCK["collection_points_m"][0] > DEPOT_RADIUS_M  # collected in view of residents


# --- the bus ---------------------------------------------------------------------

def test_bus_stops_at_every_stop_for_its_dwell() -> None:
    plan = bus_plan(ROUTE, random.Random(1))
    there = Road(ROUTE["shape"])
    # start as it leaves the first stop, so that every stay is seen whole
    found = stays(samples(plan, start=plan.starts[1] + STEP / 2))
    names = [stop["name"] for stop in ROUTE["stops"]]
    expected = names[1:] + names[-2::-1]  # out to the terminus, then back
    assert len(found) == len(expected)
    stops = ROUTE["stops"][1:] + ROUTE["stops"][-2::-1]
    for (seconds, where), stop, name in zip(found, stops, expected, strict=True):
        lat, lon, _ = there.at(stop["distance_m"])
        assert metres((where.lat, where.lon), (lat, lon)) < 0.5, name
        if name in (names[0], names[-1]):  # layover at a terminus, then boarding
            assert BUS_LAYOVER[0] + BUS_DWELL[0] <= seconds <= BUS_LAYOVER[1] + BUS_DWELL[1] + STEP
        else:
            assert BUS_DWELL[0] - STEP <= seconds <= BUS_DWELL[1] + STEP, name


def test_bus_speed_stays_within_the_cruise_limit_and_looks_like_a_real_bus() -> None:
    plan = bus_plan(ROUTE, random.Random(2))
    track = samples(plan)
    limit = BUS_CRUISE[1]
    assert max(fix.speed for _, fix in track) <= limit + 1e-9
    assert max(fix.speed for _, fix in track) > BUS_CRUISE[0]  # it does reach cruise speed
    for (_, a), (_, b) in itertools.pairwise(track):
        # the position moves no faster than the reported speed allows
        assert metres((a.lat, a.lon), (b.lat, b.lon)) <= limit * STEP + 0.01
        assert abs(b.speed - a.speed) <= BUS_BRAKE * STEP + 1e-9  # no jumps in speed
    # one way (without the layover) takes about as long as the real timetable says
    one_way = sum(leg.seconds for leg in plan.legs[: len(plan.legs) // 2 - 1]) / 60
    assert 0.7 < one_way / ROUTE["timetable_minutes"] < 1.3


def test_headings_point_where_the_vehicles_go() -> None:
    for plan in (bus_plan(ROUTE, random.Random(3)), truck_plan(TRUCK, random.Random(3))):
        moving = [(t, fix) for t, fix in samples(plan) if fix.speed > 1]
        off = []
        for t, fix in moving:
            ahead = plan.where(t + 0.1)
            assert fix.heading is not None
            off.append(turn(fix.heading, bearing((fix.lat, fix.lon), (ahead.lat, ahead.lon))))
        assert sorted(off)[len(off) // 2] < 0.5  # the median is exact
        assert sum(o < 10 for o in off) / len(off) > 0.98  # corners blur the rest


# --- the garbage truck and the stall -------------------------------------------

def test_truck_leaves_its_depot_collects_and_comes_back() -> None:
    plan = truck_plan(TRUCK, random.Random(4))
    depot = (TRUCK["depot"]["lat"], TRUCK["depot"]["lon"])

    def from_depot(fix: Fix) -> float:
        return metres((fix.lat, fix.lon), depot)

    track = samples(plan, start=STEP / 2)  # at 0 it stands still for a moment
    assert from_depot(plan.where(0)) < 1 and from_depot(plan.where(plan.seconds - 0.01)) < 1
    assert max(from_depot(fix) for _, fix in track) > 1000  # it did go out
    assert max(fix.speed for _, fix in track) <= TRUCK_CRUISE[1] + 1e-9
    hidden = sum(STEP for _, fix in track if from_depot(fix) <= DEPOT_RADIUS_M)
    assert hidden >= TRUCK_DEPOT_WAIT  # long enough for a viewer to notice it is gone
    found = stays(track)
    collections, home = found[:-1], found[-1]
    assert len(collections) == len(TRUCK["collection_points_m"])
    assert all(TRUCK_COLLECT[0] - STEP <= s <= TRUCK_COLLECT[1] + STEP for s, _ in collections)
    assert from_depot(home[1]) < 1 and home[0] == pytest.approx(TRUCK_DEPOT_WAIT, abs=STEP)


def test_stall_stands_at_the_festival_and_moves_a_few_metres_now_and_then() -> None:
    spot = (42.318994, 140.970710)
    fixes = [stall_fix(spot, t, "yatai-01") for t in range(0, 3600, 10)]
    assert all(metres((f.lat, f.lon), spot) < 7.1 and f.speed == 0 for f in fixes)
    places = {(f.lat, f.lon) for f in fixes}
    assert 10 < len(places) <= 31  # a new place every two minutes, not every report


# --- the demo town through MQTT, the server and the public API ---------------------

@pytest.mark.slow
def test_demo_town_as_residents_see_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, embedded_mqtt_port=free_port(),
                        web={"port": 0, "live_poll_s": 0.2})
    server = Server(settings)
    server.start()
    stop = threading.Event()
    threads = start_devices(server, town_devices(), stop)
    base = f"{server.web_url}/api/v1/towns/{TOWN}"
    shown: list[set[str]] = []

    def vehicles() -> set[str]:
        response = httpx.get(f"{base}/vehicles")  # 404 until the first snapshot has the town
        names = {f["id"] for f in response.json()["features"]} if response.is_success else set()
        shown.append(names)
        return names

    try:
        # the bus and the stall at once; the truck is still in its depot
        assert wait_until(lambda: {"bus-01", "yatai-01"} <= vehicles(), timeout=20), shown
        assert "gomi-01" not in shown[-1]

        def sensors() -> list[dict]:
            response = httpx.get(f"{base}/sensors")
            return list(response.json()["features"]) if response.is_success else []

        assert wait_until(lambda: len(sensors()) == 2, timeout=10)
        assert {f["id"] for f in sensors()} == {"snow-01", "snow-02"}  # never the printer
        assert all(f["geometry"] for f in sensors())  # their place is a setting
        # the truck appears once it has driven out of its depot circle
        assert wait_until(lambda: "gomi-01" in vehicles(), timeout=60, every=1), shown
        assert server.storage is not None
        stored = server.storage.recent("positions", 1000)
        printer = server.storage.find_devices({(TOWN, "printer-01")})[(TOWN, "printer-01")]
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        server.stop()
    road = Road(ROUTE["shape"])
    bus = [cast(tuple[float, float], (row["lat"], row["lon"]))
           for row in stored if row["device"] == "bus-01"]
    assert len(set(bus)) > 3  # it moved
    for point in bus:  # …along the route
        assert min(metres(point, road.at(d)[:2]) for d in range(0, int(road.length), 5)) < 3
    assert not printer.public and printer.kind == "printer_buzzer"
