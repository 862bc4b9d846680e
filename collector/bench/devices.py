"""A town's devices for the soak: vehicles and sensors, one MQTT client each.

Like the firmware, a device keeps every QoS 1 message until the broker has
acknowledged it, and sends the unacknowledged ones again after reconnecting
(paho does both: its own thread reconnects with 1..30 s backoff). So "sent"
in the report means "acknowledged by the broker": nothing a device still holds
counts as lost. One process holds them all; the load is light (tens of msg/s).
"""

import heapq
import math
import time
from dataclasses import dataclass

from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from machikit import contract

TOWN_HALL = (42.3149, 140.9740)
ACK_WAIT_S = 120.0  # after the last message: every device has its PUBACKs
INFLIGHT = 100  # room for a long outage's messages (one every 5 s)


@dataclass
class DeviceJob:
    mqtt_url: str
    town: str
    vehicles: list[str]
    vehicle_every_s: float
    sensors: list[str]
    sensor_every_s: float
    seconds: float


class Device:
    def __init__(self, job: DeviceJob, name: str, channel: str, index: int) -> None:
        target = parse_mqtt_url(job.mqtt_url)
        self.client = make_client(target, f"{job.town}-{name}", "5")
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.on_publish = self._on_ack
        self.client.on_connect = self._on_connect
        self.topic = contract.topic(job.town, name, channel)
        self.channel, self.index = channel, index
        self.seq = self.acked = self.refused = self.connects = 0
        self.client.connect_async(target.host, target.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if not reason.is_failure:
            self.connects += 1

    def _on_ack(self, client, userdata, mid, reason, props) -> None:
        if reason.is_failure:  # the broker refused it (it would not be stored)
            self.refused += 1
        else:
            self.acked += 1

    def send(self) -> None:
        self.seq += 1
        now_ms = time.time_ns() // 1_000_000
        if self.channel == contract.POSITION:
            angle = (self.seq * 0.01 + self.index) % (2 * math.pi)
            msg = contract.position(self.seq, now_ms,
                                    round(TOWN_HALL[0] + 0.02 * math.sin(angle), 6),
                                    round(TOWN_HALL[1] + 0.02 * math.cos(angle), 6),
                                    speed=8.3, sats=9, hdop=0.9)
        else:
            msg = contract.reading(self.seq, now_ms, "temp", round(-5 + self.seq % 100 / 10, 1),
                                   "degC")
        # Not connected: paho keeps it and sends it after reconnecting.
        self.client.publish(self.topic, contract.encode(msg), qos=1)

    def done(self) -> bool:
        return self.acked + self.refused >= self.seq

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def schedule(devices: list[tuple[Device, float]], start: float) -> list[tuple[float, int]]:
    """Each device's first message, spread evenly over its interval."""
    by_every: dict[float, list[int]] = {}
    for i, (_, every) in enumerate(devices):
        by_every.setdefault(every, []).append(i)
    due = []
    for every, members in by_every.items():
        due += [(start + every * k / len(members), i) for k, i in enumerate(members)]
    heapq.heapify(due)
    return due


def run_devices(job: DeviceJob, ready, go, stop, results) -> None:
    """Process entry: connect everyone, say ready, send until the time is up
    (or stop), wait for the PUBACKs, report."""
    devices = ([(Device(job, n, contract.POSITION, i), job.vehicle_every_s)
                for i, n in enumerate(job.vehicles)]
               + [(Device(job, n, contract.READING, i), job.sensor_every_s)
                  for i, n in enumerate(job.sensors)])
    _wait(lambda: all(d.connects for d, _ in devices), 60.0)
    ready.put(len(devices))
    go.wait()
    start = time.time()
    due = schedule(devices, start)
    while due and not stop.is_set():
        when, i = due[0]
        if when >= start + job.seconds:
            break
        if stop.wait(max(0.0, when - time.time())):
            break
        heapq.heapreplace(due, (when + devices[i][1], i))
        devices[i][0].send()
    _wait(lambda: all(d.done() for d, _ in devices), ACK_WAIT_S)
    results.put(tally(devices, time.time() - start))
    for device, _ in devices:
        device.close()


def tally(devices: list[tuple[Device, float]], seconds: float) -> dict:
    found: dict = {"seconds": round(seconds, 1)}
    for kind, channel in (("vehicles", contract.POSITION), ("sensors", contract.READING)):
        mine = [d for d, _ in devices if d.channel == channel]
        found[kind] = {"devices": len(mine), "published": sum(d.seq for d in mine),
                       "acked": sum(d.acked for d in mine),
                       "refused": sum(d.refused for d in mine),
                       "unacked": sum(d.seq - d.acked - d.refused for d in mine),
                       "reconnects": sum(max(0, d.connects - 1) for d in mine)}
    return found


def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)

