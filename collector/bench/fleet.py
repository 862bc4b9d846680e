"""Publisher processes: a fleet of buses sending contract v1 positions at QoS 1.

Each process drives its own share of the fleet with one paho client in its own
thread (client.loop(), no loop_start): measured here, that publishes ≈ 26k msg/s
per process against ≈ 12k msg/s with paho's network thread, because publish()
then writes straight to the socket instead of waking another thread per message.
`t` is the publish time, so the collector's `ages` are publish → commit.
"""

import math
import time
from dataclasses import dataclass

from collector.bench.bed import connected_client
from machikit import contract

TOWN_HALL = (42.3149, 140.9740)  # circles around here; any place would do
INFLIGHT = 1000  # as many unacknowledged as Mosquitto's Receive Maximum allows
ACK_WAIT_S = 120.0


@dataclass
class PublishJob:
    mqtt_url: str
    town: str
    vehicles: list[str]
    client_id: str
    rate: float = 0.0  # msg/s for this process; 0: as fast as possible (backlog)
    seconds: float = 0.0  # paced: how long to offer the rate
    count: int = 0  # backlog: how many to send


class Fleet:
    """Round-robin over the vehicles; each has its own sequence number."""

    def __init__(self, town: str, vehicles: list[str]) -> None:
        self.topics = [contract.topic(town, v, contract.POSITION) for v in vehicles]
        self.seqs = [0] * len(vehicles)
        self.turn = 0

    def next_message(self) -> tuple[str, bytes]:
        i = self.turn
        self.turn = (i + 1) % len(self.topics)
        self.seqs[i] += 1
        seq = self.seqs[i]
        angle = (seq * 0.002 + i) % (2 * math.pi)
        msg = contract.position(
            seq, time.time_ns() // 1_000_000,
            round(TOWN_HALL[0] + 0.02 * math.sin(angle), 6),
            round(TOWN_HALL[1] + 0.02 * math.cos(angle), 6),
            speed=8.3, heading=round(math.degrees(angle) % 360, 1), sats=9, hdop=0.9)
        return self.topics[i], contract.encode(msg)


class Sender:
    """One QoS 1 client; counts the broker's PUBACKs."""

    def __init__(self, job: PublishJob) -> None:
        self.client = connected_client(job.mqtt_url, job.client_id, inflight=INFLIGHT)
        self.acked = 0
        self.client.on_publish = self._on_publish
        self.fleet = Fleet(job.town, job.vehicles)
        self.sent = 0

    def _on_publish(self, *_: object) -> None:
        self.acked += 1

    def send_one(self) -> None:
        topic, payload = self.fleet.next_message()
        self.client.publish(topic, payload, qos=1)
        self.sent += 1
        if self.sent % 100 == 0:  # read PUBACKs now and then, or the window fills up
            self.client.loop(0)

    def wait_acks(self) -> None:
        deadline = time.monotonic() + ACK_WAIT_S
        while self.acked < self.sent and time.monotonic() < deadline:
            self.client.loop(0.05)

    def close(self) -> None:
        self.client.disconnect()


def offer(sender: Sender, rate: float, seconds: float) -> None:
    """Paced: message i is due at i / rate. A sender that falls behind sends
    as fast as it can, and stops on time anyway."""
    total = round(rate * seconds)
    start = time.monotonic()
    end = start + seconds
    while sender.sent < total and (now := time.monotonic()) < end:
        due = min(total, int((now - start) * rate) + 1)
        while sender.sent < due:
            sender.send_one()
        # PUBACKs in while waiting for the next message's moment (select, not sleep)
        wait = start + sender.sent / rate - time.monotonic()
        sender.client.loop(min(0.005, max(0.0, wait)))


def burst(sender: Sender, count: int) -> None:
    while sender.sent < count:
        sender.send_one()


def publish(job: PublishJob, ready, go, results) -> None:
    """Process entry: connect, say ready, wait for go, publish, report."""
    sender = Sender(job)
    ready.put(job.client_id)
    go.wait()
    cpu0, wall0 = time.process_time(), time.monotonic()
    if job.rate:
        offer(sender, job.rate, job.seconds)
    else:
        burst(sender, job.count)
    wall1 = time.monotonic()
    sender.wait_acks()
    results.put({"client_id": job.client_id, "sent": sender.sent, "acked": sender.acked,
                 "publish_s": wall1 - wall0, "ack_s": time.monotonic() - wall0,
                 "cpu_s": time.process_time() - cpu0})
    sender.close()


def split(vehicles: list[str], parts: int) -> list[list[str]]:
    """Disjoint shares, so every vehicle's seq comes from one process."""
    return [vehicles[i::parts] for i in range(parts)]
