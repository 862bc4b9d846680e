"""Publish → stored, on both stacks: every channel, replays, poison, unsynced clocks."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from machikit import contract
from tests.collector.helpers import unique_town, wait_until
from tests.collector.stacks import Stack, embedded_stack, real_stack


@pytest.fixture(params=["embedded", "real"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    town = unique_town()
    if request.param == "embedded":
        with embedded_stack(tmp_path, town) as s:
            yield s
    else:
        db = request.getfixturevalue("database_url")
        broker = request.getfixturevalue("mqtt_url")
        with real_stack(db, broker, town) as s:
            yield s


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stored(stack: Stack, table: str, expected: int, timeout: float = 20) -> int:
    wait_until(lambda: stack.storage.counts()[table] >= expected, timeout)
    time.sleep(0.3)  # anything more than expected would show up now
    return stack.storage.counts()[table]


def test_every_channel_is_stored(stack: Stack) -> None:
    town = stack.town
    for name, kind in (("bus-01", "bus"), ("snow-01", "snow_gauge"), ("printer-1", "printer")):
        stack.storage.add_device(town, name, kind)
    pub = stack.publisher("mixed")
    t = now_ms()
    pub.send_msg(town, "bus-01", "pos", contract.position(1, t, 42.3154, 140.9736, speed=8.3))
    pub.send_msg(town, "snow-01", "reading",
                 contract.reading(1, t, "snow_depth", 35.2, "cm", "reference"))
    pub.send_msg(town, "printer-1", "event", contract.event(1, t, "paper_taken", 75, "s"))
    pub.send_msg(town, "bus-01", "status", contract.status("online", fw="0.1.0", t=t, rssi=-60))
    backlog = [("pos", contract.position(seq, t - 60_000 + seq, 42.31, 140.97))
               for seq in range(2, 12)]
    pub.send_msg(town, "bus-01", "batch", contract.batch(backlog))
    pub.send_msg(town, "bus-01", "cmd", contract.command({"interval_s": 5}))  # not stored
    assert pub.all_acknowledged()
    assert stored(stack, "positions", 11) == 11
    counts = stack.storage.counts()
    assert (counts["readings"], counts["events"], counts["device_status"]) == (1, 1, 1)
    assert counts["quarantine"] == 0


def test_replayed_backlog_is_stored_once(stack: Stack) -> None:
    stack.storage.add_device(stack.town, "bus-01", "bus")
    pub = stack.publisher("replay")
    t = now_ms() - 3_600_000
    items = [("pos", contract.position(seq, t + seq * 5000, 42.31, 140.97)) for seq in range(100)]
    for start in (0, 50):  # the device sends its buffer, loses the link, sends it all again
        pub.send_msg(stack.town, "bus-01", "batch", contract.batch(items[start:start + 50]))
    pub.send_msg(stack.town, "bus-01", "batch", contract.batch(items))
    for _, msg in items[:20]:
        pub.send_msg(stack.town, "bus-01", "pos", msg)
    assert pub.all_acknowledged()
    assert stored(stack, "positions", 100) == 100
    assert wait_until(lambda: stack.counters.duplicates == 120)


def test_poison_is_quarantined_with_reasons_while_good_flows(stack: Stack) -> None:
    town = stack.town
    stack.storage.add_device(town, "bus-01", "bus")
    pub = stack.publisher("poison")
    t = now_ms()
    poison = {
        "bad_json": (f"machikit/v1/{town}/bus-01/pos", b"{lat: 42.3"),
        "bad_type": (f"machikit/v1/{town}/bus-01/pos",
                     contract.encode({"v": 1, "seq": 900, "t": t, "lat": "42", "lon": 140.9})),
        "oversize": (f"machikit/v1/{town}/bus-01/event", b'{"v":1,"text":"' + b"x" * 10000 + b'"}'),
        "unknown_device": (f"machikit/v1/{town}/stranger/pos",
                           contract.encode(contract.position(1, t, 42.3, 140.9))),
        "future_time": (f"machikit/v1/{town}/bus-01/pos",
                        contract.encode(contract.position(901, t + 86_400_000, 42.3, 140.9))),
        "bad_topic": (f"machikit/v1/{town}/bus-01", b"{}"),
    }
    for seq in range(200):
        pub.send_msg(town, "bus-01", "pos", contract.position(seq, t + seq, 42.3, 140.9))
        if seq % 30 == 0:
            for topic, payload in poison.values():
                pub.send(topic, payload)
    assert pub.all_acknowledged()
    assert stored(stack, "positions", 200) == 200
    # bad_topic is outside the subscription filter (machikit/v1/+/+/+): the broker never
    # delivers it, so 5 kinds x 7 rounds reach quarantine.
    assert stored(stack, "quarantine", 35) == 35
    reasons = quarantine_reasons(stack)
    assert reasons == {r: 7 for r in poison if r != "bad_topic"}


def quarantine_reasons(stack: Stack) -> dict[str, int]:
    if stack.storage.engine == "sqlite":
        rows = stack.storage.db.execute(  # type: ignore[attr-defined]
            "SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
    else:
        rows = stack.storage._run(lambda c: c.execute(  # type: ignore[attr-defined]
            "SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall())
    return dict(rows)


def test_unsynced_clock_gets_a_stable_time(stack: Stack) -> None:
    stack.storage.add_device(stack.town, "stall-07", "stall")
    pub = stack.publisher("unsynced")
    msgs = [contract.position(seq, None, 42.3, 140.9, boot=4, up=60_000 + seq * 1000)
            for seq in range(5)]
    for msg in msgs:
        pub.send_msg(stack.town, "stall-07", "pos", msg)
    assert pub.all_acknowledged()
    assert stored(stack, "positions", 5) == 5
    time.sleep(1.5)  # a redelivery later must land on the same time, hence stored once
    for msg in msgs:
        pub.send_msg(stack.town, "stall-07", "pos", msg)
    assert pub.all_acknowledged()
    assert stored(stack, "positions", 5) == 5
    assert wait_until(lambda: stack.counters.duplicates == 5)


def test_a_message_the_database_refuses_is_quarantined_alone(stack: Stack) -> None:
    """Valid JSON the database cannot store (a lone UTF-16 surrogate) must not block the
    batch: the batch is retried one message at a time and only that one is refused."""
    stack.storage.add_device(stack.town, "printer-1", "printer")
    pub = stack.publisher("surrogate")
    t = now_ms()
    for seq in range(20):
        pub.send_msg(stack.town, "printer-1", "event", contract.event(seq, t + seq, "paper_taken"))
    pub.send(f"machikit/v1/{stack.town}/printer-1/event",
             b'{"v":1,"seq":99,"t":%d,"event":"note","text":"\\ud800"}' % t)
    assert pub.all_acknowledged()
    assert stored(stack, "events", 20) == 20
    assert stored(stack, "quarantine", 1) == 1
    assert quarantine_reasons(stack) == {"storage_error": 1}
