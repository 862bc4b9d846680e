"""Simulated devices for the demo: they speak contract v1 over MQTT exactly like
the firmware and Pi jobs do (QoS 1, retained status, last will, sequence)."""

import math
import random
import threading
import time

from collector.mqtt import connect, make_client
from collector.settings import MqttTarget
from machikit import contract

FIRMWARE = "demo-0.1.0"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class SimulatedDevice:
    """Connects with a last will, says it is online, then publishes every `interval_s`."""

    kind = "sensor"
    interval_s = 2.0

    def __init__(self, town: str, name: str, target: MqttTarget, protocol: str) -> None:
        self.town, self.name = town, name
        self.seq = 0
        self.client = make_client(target, f"demo-{town}-{name}", protocol)
        status_topic = contract.topic(town, name, contract.STATUS)
        self.client.will_set(status_topic, contract.encode(contract.offline_will()), 1, True)
        self.client.on_connect = lambda c, *_: c.publish(
            status_topic, contract.encode(contract.status("online", fw=FIRMWARE, t=now_ms())),
            1, True)
        self.target = target

    def publish(self, channel: str, msg: dict) -> None:
        self.client.publish(contract.topic(self.town, self.name, channel), contract.encode(msg), 1)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def tick(self, elapsed_s: float) -> None:
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        connect(self.client, self.target)
        self.client.loop_start()
        started = time.monotonic()
        while not stop.wait(self.interval_s):
            self.tick(time.monotonic() - started)
        status = contract.status("offline", fw=FIRMWARE, t=now_ms())
        self.client.publish(contract.topic(self.town, self.name, contract.STATUS),
                            contract.encode(status), 1, True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


class RouteVehicle(SimulatedDevice):
    """Drives along a loop of (lat, lon) points at `speed` m/s."""

    kind = "bus"
    speed = 8.0
    route: tuple[tuple[float, float], ...] = ()

    def tick(self, elapsed_s: float) -> None:
        lat, lon, heading = position_on_loop(self.route, self.speed * elapsed_s)
        self.publish(contract.POSITION, contract.position(
            self.next_seq(), now_ms(), round(lat, 6), round(lon, 6), speed=self.speed,
            heading=round(heading, 1), sats=random.randint(7, 12), hdop=0.9))


class Bus(RouteVehicle):
    route = ((42.3154, 140.9736), (42.3170, 140.9790), (42.3205, 140.9850),
             (42.3240, 140.9890), (42.3205, 140.9850), (42.3170, 140.9790))


class GarbageTruck(RouteVehicle):
    kind = "garbage_truck"
    speed = 5.0
    route = ((42.3300, 140.9800), (42.3330, 140.9850), (42.3360, 140.9830),
             (42.3330, 140.9850))


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


def position_on_loop(points: tuple[tuple[float, float], ...],
                     distance_m: float) -> tuple[float, float, float]:
    """Where a vehicle is after `distance_m` along the closed loop of points."""
    legs = [(a, points[(i + 1) % len(points)]) for i, a in enumerate(points)]
    lengths = [metres(a, b) for a, b in legs]
    distance_m %= sum(lengths)
    for (a, b), length in zip(legs, lengths, strict=True):
        if distance_m <= length:
            f = distance_m / length
            heading = math.degrees(math.atan2((b[1] - a[1]) * math.cos(math.radians(a[0])),
                                              b[0] - a[0])) % 360
            return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), heading
        distance_m -= length
    return points[0][0], points[0][1], 0.0


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance on the ground, good enough over a town (equirectangular)."""
    x = math.radians(b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    y = math.radians(b[0] - a[0])
    return 6_371_000 * math.hypot(x, y)
