"""Simulated devices for the demo: they speak contract v1 over MQTT exactly like
the firmware and Pi jobs do (QoS 1, retained status, last will, sequence).

The vehicles follow real streets of Muroran (collector/demo_data/, cut from the
道南バス GTFS-JP feed). Where a vehicle is at a given second is a pure function
(`Plan.where`), so tests can check the whole day without MQTT or waiting.
"""

import bisect
import itertools
import json
import math
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from collector.mqtt import connect, make_client
from collector.settings import MqttTarget
from machikit import contract
from machikit.geo import bearing, metres

FIRMWARE = "demo-0.1.0"
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"

LatLon = tuple[float, float]

# How the vehicles drive (m/s, m/s², s). 1 m/s = 3.6 km/h.
BUS_CRUISE = (30 / 3.6, 40 / 3.6)  # between stops: 30–40 km/h, it varies with traffic
BUS_ACCEL, BUS_BRAKE = 1.0, 1.2  # comfortable for standing passengers
BUS_DWELL = (15.0, 30.0)  # at each stop
BUS_LAYOVER = (120.0, 300.0)  # at the terminus, before the return trip
TRUCK_CRUISE = (20 / 3.6, 30 / 3.6)
TRUCK_ACCEL, TRUCK_BRAKE = 0.8, 1.0
TRUCK_COLLECT = (30.0, 60.0)  # at each collection point (ごみステーション)
TRUCK_DEPOT_WAIT = 60.0  # a real truck waits hours; the demo wants it back soon
STALL_MOVE_EVERY = 120.0  # a festival stall is pushed a little now and then
STALL_MOVE_M = 5.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_demo_data(name: str) -> dict:
    """A file of collector/demo_data/ (see its README for the source and licence)."""
    return json.loads((DEMO_DATA / name).read_text(encoding="utf-8"))


# --- where things are: pure functions ------------------------------------------


def offset(p: LatLon, east_m: float, north_m: float) -> LatLon:
    """The point a few metres east and north of p."""
    return (p[0] + math.degrees(north_m / 6_371_000),
            p[1] + math.degrees(east_m / (6_371_000 * math.cos(math.radians(p[0])))))


class Road:
    """Streets as a line of (lat, lon) points, driven from the first to the last."""

    def __init__(self, points: list[LatLon]) -> None:
        self.points = [(float(lat), float(lon)) for lat, lon in points]
        self.along = [0.0]  # distance from the start to each point
        for a, b in itertools.pairwise(self.points):
            self.along.append(self.along[-1] + metres(a, b))

    @property
    def length(self) -> float:
        return self.along[-1]

    def reversed(self) -> "Road":
        return Road(self.points[::-1])

    def at(self, distance_m: float) -> tuple[float, float, float]:
        """(lat, lon, heading) after driving `distance_m` from the start."""
        d = min(max(distance_m, 0.0), self.length)
        i = min(bisect.bisect_right(self.along, d) - 1, len(self.points) - 2)
        a, b = self.points[i], self.points[i + 1]
        f = (d - self.along[i]) / (self.along[i + 1] - self.along[i])
        return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), bearing(a, b)


def speed_plan(length: float, cruise: float, accel: float,
               brake: float) -> tuple[float, float, float]:
    """From stop to stop: (top speed, seconds speeding up, seconds at top speed).
    The top speed is the cruise speed, or less when the stops are close together."""
    top = min(cruise, math.sqrt(2 * length * accel * brake / (accel + brake)))
    if top == 0:
        return 0.0, 0.0, 0.0
    at_top = max(0.0, length - top * top / (2 * accel) - top * top / (2 * brake)) / top
    return top, top / accel, at_top


def drive_time(length: float, cruise: float, accel: float, brake: float) -> float:
    """Seconds to drive `length` metres from standstill to standstill."""
    top, up, at_top = speed_plan(length, cruise, accel, brake)
    return up + at_top + top / brake


def driven(t: float, length: float, cruise: float, accel: float,
           brake: float) -> tuple[float, float]:
    """(metres driven, speed) `t` seconds after leaving: speed up, cruise, brake."""
    top, up, at_top = speed_plan(length, cruise, accel, brake)
    if t < up:
        return accel * t * t / 2, accel * t
    if t < up + at_top:
        return top * up / 2 + top * (t - up), top
    t = min(t - up - at_top, top / brake)  # seconds braking
    return min(length, top * up / 2 + top * at_top + top * t - brake * t * t / 2), top - brake * t


@dataclass(frozen=True)
class Leg:
    """One part of a vehicle's round: drive along a road, or wait (from_m == to_m)."""

    road: Road
    from_m: float
    to_m: float
    seconds: float
    cruise: float = 0.0
    accel: float = 1.0
    brake: float = 1.0


def drive(road: Road, from_m: float, to_m: float, cruise: float, accel: float,
          brake: float) -> Leg:
    return Leg(road, from_m, to_m, drive_time(to_m - from_m, cruise, accel, brake),
               cruise, accel, brake)


def wait(road: Road, at_m: float, seconds: float) -> Leg:
    return Leg(road, at_m, at_m, seconds)


@dataclass(frozen=True)
class Fix:
    """What a GPS tracker would report."""

    lat: float
    lon: float
    speed: float  # m/s
    heading: float | None  # degrees from north


class Plan:
    """A vehicle's round as legs one after the other; then it starts again."""

    def __init__(self, legs: list[Leg]) -> None:
        self.legs = legs
        self.starts = [0.0]  # seconds into the round when each leg begins
        for leg in legs:
            self.starts.append(self.starts[-1] + leg.seconds)

    @property
    def seconds(self) -> float:
        """How long one round takes."""
        return self.starts[-1]

    def leg_at(self, t: float) -> tuple[Leg, float]:
        """The leg at `t` seconds and the seconds since it began."""
        t %= self.seconds
        i = min(bisect.bisect_right(self.starts, t) - 1, len(self.legs) - 1)
        return self.legs[i], t - self.starts[i]

    def where(self, t: float) -> Fix:
        leg, since = self.leg_at(t)
        speed = 0.0
        distance = leg.from_m
        if leg.to_m != leg.from_m:
            moved, speed = driven(since, leg.to_m - leg.from_m, leg.cruise, leg.accel,
                                  leg.brake)
            distance += moved
        lat, lon, heading = leg.road.at(distance)
        return Fix(lat, lon, max(speed, 0.0), heading)


def bus_plan(route: dict, rng: random.Random) -> Plan:
    """A bus along the real route: every stop with a dwell, a layover at each end,
    the return trip on the same streets backwards."""
    there = Road(route["shape"])
    back = there.reversed()
    stops_there = [stop["distance_m"] for stop in route["stops"]]
    stops_back = [back.length - d for d in reversed(stops_there)]
    legs = []
    for road, stops in ((there, stops_there), (back, stops_back)):
        for a, b in itertools.pairwise(stops):
            legs.append(wait(road, a, rng.uniform(*BUS_DWELL)))
            legs.append(drive(road, a, b, rng.uniform(*BUS_CRUISE), BUS_ACCEL, BUS_BRAKE))
        legs.append(wait(road, stops[-1], rng.uniform(*BUS_LAYOVER)))
    return Plan(legs)


def truck_plan(truck: dict, rng: random.Random) -> Plan:
    """A garbage truck: out of the depot, a stop at every collection point, straight
    back to the depot, a wait there."""
    out = Road(truck["path"])
    back = out.reversed()
    legs, here = [], 0.0
    for point in truck["collection_points_m"]:
        legs.append(drive(out, here, point, rng.uniform(*TRUCK_CRUISE), TRUCK_ACCEL,
                          TRUCK_BRAKE))
        legs.append(wait(out, point, rng.uniform(*TRUCK_COLLECT)))
        here = point
    legs.append(drive(back, back.length - here, back.length, TRUCK_CRUISE[1], TRUCK_ACCEL,
                      TRUCK_BRAKE))
    legs.append(wait(back, back.length, TRUCK_DEPOT_WAIT))
    return Plan(legs)


def stall_fix(spot: LatLon, t: float, seed: str) -> Fix:
    """A festival stall stands still; every few minutes it is pushed a few metres."""
    rng = random.Random(f"{seed}-{int(t // STALL_MOVE_EVERY)}")
    lat, lon = offset(spot, rng.uniform(-STALL_MOVE_M, STALL_MOVE_M),
                      rng.uniform(-STALL_MOVE_M, STALL_MOVE_M))
    return Fix(lat, lon, 0.0, None)


# --- the devices: MQTT ------------------------------------------------------------


class SimulatedDevice:
    """Connects with a last will, says it is online, then publishes every `interval_s`."""

    kind = "sensor"
    interval_s = 2.0

    def __init__(self, town: str, name: str) -> None:
        self.town, self.name = town, name
        self.seq = 0
        self.client: mqtt.Client | None = None  # made by run()

    def publish(self, channel: str, msg: dict) -> None:
        assert self.client is not None
        self.client.publish(contract.topic(self.town, self.name, channel), contract.encode(msg), 1)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def tick(self, elapsed_s: float) -> None:
        raise NotImplementedError

    def run(self, stop: threading.Event, target: MqttTarget, protocol: str) -> None:
        client = self.client = make_client(target, f"mk-{self.town}-{self.name}", protocol)
        status_topic = contract.topic(self.town, self.name, contract.STATUS)
        client.will_set(status_topic, contract.encode(contract.offline_will()), 1, True)
        online = threading.Event()

        def on_connect(c: mqtt.Client, *_: object) -> None:
            status = contract.status("online", fw=FIRMWARE, t=now_ms())
            c.publish(status_topic, contract.encode(status), 1, True)
            online.set()

        client.on_connect = on_connect
        connect(client, target)
        client.loop_start()
        online.wait(10)  # say "online" before any data (paho would queue data meanwhile)
        started = time.monotonic()
        while not stop.is_set():
            self.tick(time.monotonic() - started)
            stop.wait(self.interval_s)
        status = contract.status("offline", fw=FIRMWARE, t=now_ms())
        client.publish(status_topic, contract.encode(status), 1, True).wait_for_publish(2)
        client.disconnect()
        client.loop_stop()


class Vehicle(SimulatedDevice):
    """A GPS tracker: reports where `fix()` says the vehicle is, every 3 s."""

    interval_s = 3.0

    def __init__(self, town: str, name: str, start_s: float = 0.0) -> None:
        super().__init__(town, name)
        self.start_s = start_s  # how far into its round the vehicle is when the demo starts

    def fix(self, t: float) -> Fix:
        raise NotImplementedError

    def tick(self, elapsed_s: float) -> None:
        fix = self.fix(self.start_s + elapsed_s)
        heading = None if fix.heading is None else round(fix.heading, 1)
        self.publish(contract.POSITION, contract.position(
            self.next_seq(), now_ms(), round(fix.lat, 6), round(fix.lon, 6),
            speed=round(fix.speed, 1), heading=heading, sats=random.randint(7, 12), hdop=0.9))


class Bus(Vehicle):
    kind = "bus"

    def __init__(self, town: str, name: str, route: dict, leaving: str | None = None) -> None:
        """`leaving`: the demo starts as the bus leaves this stop (default: the first)."""
        super().__init__(town, name)
        self.plan = bus_plan(route, random.Random(name))  # the same name, the same day
        names = [stop["name"] for stop in route["stops"]]
        stop = names.index(leaving) if leaving else 0
        self.start_s = self.plan.starts[2 * stop + 1]  # legs: dwell at stop 0, drive, dwell…

    def fix(self, t: float) -> Fix:
        return self.plan.where(t)


class GarbageTruck(Vehicle):
    kind = "garbage_truck"

    def __init__(self, town: str, name: str, truck: dict, start_s: float = 0.0) -> None:
        super().__init__(town, name, start_s)
        self.plan = truck_plan(truck, random.Random(name))

    def fix(self, t: float) -> Fix:
        return self.plan.where(t)


class Stall(Vehicle):
    """A festival stall (屋台) with a GPS tracker."""

    kind = "stall"
    interval_s = 10.0  # it hardly moves; a real tracker would save its battery

    def __init__(self, town: str, name: str, spot: LatLon) -> None:
        super().__init__(town, name)
        self.spot = spot

    def fix(self, t: float) -> Fix:
        return stall_fix(self.spot, t, self.name)


class SnowGauge(SimulatedDevice):
    kind = "snow_gauge"
    interval_s = 5.0

    def tick(self, elapsed_s: float) -> None:
        depth = 35.0 + elapsed_s / 60.0 + random.uniform(-0.3, 0.3)
        t = now_ms()
        self.publish(contract.READING, contract.reading(
            self.next_seq(), t, "snow_depth", round(depth, 1), "cm", "reference"))
        self.publish(contract.READING, contract.reading(
            self.next_seq(), t, "air_temp", round(-6.0 + random.uniform(-0.5, 0.5), 1), "degC"))


class PrinterBuzzer(SimulatedDevice):
    """Paper arrives, sometimes stays too long (alarm), then is taken."""

    kind = "printer_buzzer"
    interval_s = 3.0
    paper_since: float | None = None

    def tick(self, elapsed_s: float) -> None:
        if self.paper_since is None:
            if random.random() < 0.5:
                self.paper_since = elapsed_s
                self.publish(contract.EVENT, contract.event(self.next_seq(), now_ms(),
                                                            "paper_arrived"))
            return
        waited = round(elapsed_s - self.paper_since)
        if waited >= 6 and random.random() < 0.5:
            self.publish(contract.EVENT, contract.event(self.next_seq(), now_ms(),
                                                        "paper_taken", waited, "s"))
            self.paper_since = None
        elif waited >= 6:
            self.publish(contract.EVENT, contract.event(self.next_seq(), now_ms(),
                                                        "paper_alarm", waited, "s",
                                                        "用紙が残っています"))
