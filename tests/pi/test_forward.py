"""pi/forward.py: live first, backlog oldest-first in contract batches, removed only after
the PUBACK. First with a stand-in link (the rules), then end to end: Outbox -> Link -> the
test bed's real Mosquitto -> a real collector -> TimescaleDB.

The drain tests print messages/s (run with -s to see them).
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from machikit import contract
from pi.forward import Forwarder
from pi.link import Link
from pi.outbox import Outbox
from tests.collector.helpers import credentials, free_port, wait_until
from tests.collector.stacks import Stack, device_stack

DEVICE = "bus-01"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def fill(box: Outbox, n: int) -> None:
    start = now_ms() - n * 100  # in the past: the collector refuses future times
    for i in range(n):
        box.put("pos", {"t": start + i * 100, "lat": 42.3 + i / 1e6, "lon": 140.97})


class FakeLink:
    """Records what would be published; `fail_after` sends succeed, then all fail."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.health: dict[str, object] = {}
        self.sent: list[tuple[str, bytes]] = []
        self.connected = True
        self.fail_after = fail_after
        self.statuses = 0

    def send(self, channel: str, payload: bytes, retain: bool = False,
             timeout: float = 10.0) -> bool:
        if not self.connected or (self.fail_after is not None and
                                  len(self.sent) >= self.fail_after):
            return False
        self.sent.append((channel, payload))
        return True

    def send_status(self, timeout: float = 10.0) -> bool:
        self.statuses += 1
        return self.connected


def seqs_on_the_wire(sent: list[tuple[str, bytes]]) -> list[tuple[str, list[int]]]:
    out = []
    for channel, payload in sent:
        if channel == contract.BATCH:
            items = contract.decode(contract.BATCH, payload)  # checks every item
            assert all(isinstance(msg, dict) for _, msg in items)
            out.append((channel, [msg["seq"] for _, msg in items]))
        else:
            out.append((channel, [contract.decode(channel, payload)["seq"]]))
    return out


def test_live_first_then_the_backlog_oldest_first_in_batches(tmp_path: Path) -> None:
    box, link = Outbox(tmp_path / "o.sqlite"), FakeLink()
    fill(box, 120)
    fwd = Forwarder(box, link, batch_items=50)  # type: ignore[arg-type]
    assert fwd.pump() == 120
    assert seqs_on_the_wire(link.sent) == [
        ("pos", [119]), ("batch", list(range(0, 50))), ("batch", list(range(50, 100))),
        ("batch", list(range(100, 119)))]
    assert box.count() == 0 and link.health == {"buffered": 0, "dropped": 0}
    assert link.statuses == 1  # "buffered 0" said at once
    fill(box, 1)
    assert fwd.pump() == 1 and seqs_on_the_wire(link.sent[-1:]) == [("pos", [120])]


def test_only_a_new_message_is_live_an_old_one_waits_its_turn(tmp_path: Path) -> None:
    box, link = Outbox(tmp_path / "o.sqlite"), FakeLink()
    fwd = Forwarder(box, link, batch_items=10)  # type: ignore[arg-type]
    fill(box, 30)
    assert fwd.pump(max_batches=1) == 11  # newest (29) live, then 0..9
    assert fwd.pump(max_batches=1) == 10  # no new message: 10..19, not 28 on its own
    fill(box, 1)  # 30, new
    assert fwd.pump(max_batches=1) == 10  # 30 live, then the rest: 20..28
    assert seqs_on_the_wire(link.sent) == [
        ("pos", [29]), ("batch", list(range(10))), ("batch", list(range(10, 20))),
        ("pos", [30]), ("batch", list(range(20, 29)))]


def test_batches_respect_the_byte_limit(tmp_path: Path) -> None:
    box, link = Outbox(tmp_path / "o.sqlite"), FakeLink()
    for _ in range(300):
        box.put("event", {"t": now_ms() - 1000, "event": "note", "text": "雪" * 190})  # ~650 B
    fwd = Forwarder(box, link, batch_items=500, batch_bytes=20_000)  # type: ignore[arg-type]
    assert fwd.batch_items == contract.MAX_BATCH_ITEMS
    assert fwd.pump(max_batches=100) == 300
    batches = [payload for channel, payload in link.sent if channel == contract.BATCH]
    assert all(len(p) <= 20_000 for p in batches) and len(batches) > 9
    assert sorted(s for _, seqs in seqs_on_the_wire(link.sent) for s in seqs) == list(range(300))


def test_nothing_is_removed_without_the_puback(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    fill(box, 100)
    link = FakeLink(fail_after=2)  # the live message and one batch get through
    fwd = Forwarder(box, link, batch_items=20)  # type: ignore[arg-type]
    assert fwd.pump() == 21
    assert box.count() == 79 and link.health["buffered"] == 79
    assert [s for s, _, _ in box.oldest(1)] == [20]
    link.connected = False
    assert fwd.pump() == 0 and box.count() == 79
    link.connected, link.fail_after = True, None
    assert fwd.pump() == 79 and box.count() == 0


# --- end to end: real Mosquitto, real collector, TimescaleDB ------------------------------

@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with device_stack(database_url, mqtt_url, DEVICE, "bus") as s:
        yield s


class Wire:
    """Everything the device publishes, as a dashboard subscribed to it would see it."""

    def __init__(self, mqtt_url: str, town: str) -> None:
        self.client = make_client(parse_mqtt_url(mqtt_url), f"test-wire-{town}", "311")
        self.seen: list[tuple[str, bytes]] = []
        topic = contract.topic(town, DEVICE, contract.POSITION).rsplit("/", 1)[0] + "/+"
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_message = self._got
        target = parse_mqtt_url(mqtt_url)
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        time.sleep(0.3)

    def _got(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.seen.append((message.topic.rsplit("/", 1)[1], message.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain(fwd: Forwarder, stack: Stack, total: int) -> float:
    """Pump until the outbox is empty and the database has `total` positions: messages/s."""
    start = time.perf_counter()
    assert wait_until(lambda: fwd.pump() >= 0 and fwd.outbox.count() == 0, 60, every=0.01)
    assert wait_until(lambda: stack.storage.counts()["positions"] >= total, 60, every=0.05)
    return total / (time.perf_counter() - start)


@pytest.mark.services
def test_a_thousand_messages_made_offline_arrive_once_in_order(
    tmp_path: Path, stack: Stack, mqtt_url: str
) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    host, port, user, password = credentials(mqtt_url)
    offline = Link(stack.town, DEVICE, "127.0.0.1", free_port(), user, password)
    offline.start()
    fwd = Forwarder(box, offline)
    fill(box, 1000)
    assert fwd.pump() == 0 and offline.health == {"buffered": 1000, "dropped": 0}
    offline.close()

    wire = Wire(mqtt_url, stack.town)
    link = Link(stack.town, DEVICE, host, port, user, password, fw="pi-test")
    fwd = Forwarder(box, link)
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        fill(box, 1)  # seq 1000: made now, live
        rate = drain(fwd, stack, 1001)
        print(f"\nforwarder: 1001 messages (1000 backlog) to the collector: {rate:.0f} msg/s")
        time.sleep(1)  # a duplicate would show up now
        counts = stack.storage.counts()
        assert counts["positions"] == 1001 and counts["quarantine"] == 0
        rows = stack.storage.recent("positions", 2000)
        assert sorted(r["seq"] for r in rows) == list(range(1001))  # each exactly once
        # On the wire: the live message first, then the backlog oldest first.
        data = [(ch, p) for ch, p in wire.seen if ch != contract.STATUS]
        order = [s for _, seqs in seqs_on_the_wire(data) for s in seqs]
        assert order == [1000, *range(1000)] and data[0][0] == "pos"
        statuses = [json.loads(p) for ch, p in wire.seen if ch == contract.STATUS]
        assert statuses[0]["buffered"] == 1000 and statuses[-1]["buffered"] == 0
        assert wait_until(lambda: stack.storage.counts()["device_status"] >= 2, 10)
    finally:
        link.close()
        wire.close()
        box.close()


@pytest.mark.services
@pytest.mark.slow
def test_drain_rate_of_a_long_outage(tmp_path: Path, stack: Stack, mqtt_url: str) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    host, port, user, password = credentials(mqtt_url)
    link = Link(stack.town, DEVICE, host, port, user, password)
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        for items in (50, 200):
            fill(box, 5000)
            fwd = Forwarder(box, link, batch_items=items)
            rate = drain(fwd, stack, stack.storage.counts()["positions"] + 5000)
            print(f"\nforwarder: 5000 backlog, {items} per batch, to the collector: "
                  f"{rate:.0f} msg/s")
        time.sleep(1)
        assert stack.storage.counts()["positions"] == 10_000
    finally:
        link.close()
        box.close()
