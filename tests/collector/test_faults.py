"""Faults on the real services, each ending in exact counts.

After every fault: each message the broker acknowledged is stored exactly once (the
rows of the test's town are counted, no (device, seq) is there twice), and the
collector's own counters say the same. Here: the full disk (SQLite on a small tmpfs),
the broker side (the collector's TCP connection cut, the embedded broker restarted)
and the device side (duplicates, a Pi's replay after hours offline, clock jumps).
The collector killed around its commit and the database away for a minute are in
test_faults_outages.py. Each module prints the counts so far at its end (fault, sent,
stored, duplicates, quarantined).
"""

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.broker import EmbeddedBroker, local_url
from collector.ingest import Collector
from collector.serve import Server
from collector.settings import Settings
from collector.storage import Batch, open_storage
from collector.storage.base import StorageFull
from machikit import contract
from pi.forward import Forwarder, batch_payload
from pi.link import Link
from pi.outbox import Outbox
from tests.collector.faults_helpers import (
    SUMMARY,
    Sender,
    Tally,
    fill,
    kick,
    positions_locked,
    quarantined,
    send_positions,
    settle,
    small_disk,
    town_rows,
    town_seqs,
    town_stored,
    waiting_writer,
)
from tests.collector.helpers import credentials, free_port, unique_town, wait_until
from tests.collector.stacks import Stack, device_stack, embedded_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """The counts the closing note needs, printed even without -s."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "fault suite: fault / sent / stored / duplicates / quarantined"]
    lines += [f"  {t.fault}: {t.sent} / {t.stored} / {t.duplicates} / {t.quarantined}"
              for t in SUMMARY]
    total = [sum(getattr(t, k) for t in SUMMARY)
             for k in ("sent", "stored", "duplicates", "quarantined")]
    lines.append(f"  {len(SUMMARY)} faults: {total[0]} sent, {total[1]} stored, "
                 f"{total[2]} duplicates recognised, {total[3]} quarantined")
    # Output capture holds the terminal during teardown: step outside it for a moment.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line)


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk (tmpfs) needs root")


def sqlite_stack(data_dir: Path, broker: str, mqtt_url: str, town: str) -> Stack:
    """`machikit serve` with its SQLite file in data_dir, on the town's Mosquitto or on
    its own embedded broker (amqtt), started."""
    common: dict[str, Any] = {"data_dir": data_dir, "stats_interval_s": 1,
                              "web": {"enabled": False}}
    if broker == "mosquitto":
        settings = Settings(mqtt_url=mqtt_url, town=town, mqtt_client_id=f"collector-{town}",
                            **common)
        server = Server(settings)
        server.start()
        return Stack(server, town)
    settings = Settings(embedded_mqtt_port=free_port(), **common)
    server = Server(settings)
    server.start()
    return Stack(server, town, lambda name: local_url(settings, f"test-{name}"))


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_full_disk_holds_acks_and_recovers(broker: str, tmp_path: Path, mqtt_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """SQLite on a disk that fills up: no ack, no loss, no crash, no quarantine of good
    messages; a clear message in the log; everything stored once space is freed. The
    disk stays full longer than amqtt waits for a PUBACK (5 s)."""
    need_root()
    town = unique_town()
    # 16 MB: once space is freed, SQLite's WAL may grow to 4 MB before it is reused
    with small_disk(tmp_path / "disk", "16m") as disk:
        stack = sqlite_stack(disk, broker, mqtt_url, town)
        server = stack.server
        db_url = server.settings.database()
        try:
            stack.storage.add_device(town, "bus-01", "bus")
            pub = stack.publisher("bus")
            send_positions(pub, town, range(100))
            assert wait_until(lambda: town_rows(db_url, town)[0] == 100)

            filler = fill(disk)
            with caplog.at_level(logging.ERROR, logger="machikit.collector"):
                # ~1 MB of rows: far more than the WAL file already has room for
                send_positions(pub, town, range(100, 3100))
                assert pub.all_acknowledged(), "the broker must take them all"
                assert wait_until(lambda: "disk is full" in caplog.text, timeout=20)
                time.sleep(7)  # retries while the disk stays full
                rows_while_full = town_rows(db_url, town)[0]
                assert server.collector is not None and not server.failed
                assert server._writer is not None and server._writer.is_alive()
            assert "ディスクがいっぱい" in caplog.text  # the Japanese half is there too
            assert rows_while_full < 3100
            assert stack.counters.quarantined == 0

            filler.unlink()
            assert wait_until(lambda: town_rows(db_url, town)[0] == 3100, timeout=60)
            time.sleep(1)
            assert town_rows(db_url, town) == (3100, 0)
            assert quarantined(db_url) == 0
            c = stack.counters
            assert (c.stored, c.quarantined) == (3100, 0)
            assert c.stored + c.duplicates == c.received
            SUMMARY.append(Tally(f"SQLite disk full (tmpfs), {broker}", 3100, 3100,
                                 c.duplicates))
        finally:
            stack.close()


def test_retention_on_a_full_disk_waits_for_space(tmp_path: Path) -> None:
    """The hourly clean-up (retention) also writes: on a full disk it must be put off like
    a batch, not end the writer with an error (deleting old rows is what frees space)."""
    need_root()
    with small_disk(tmp_path / "disk", "16m") as disk:
        store = open_storage(f"sqlite:///{disk}/machikit.db")
        try:
            store.migrate()
            device = store.add_device("t1", "bus-01", "bus")
            old = time.time_ns() // 1_000_000 - 40 * 86_400_000  # past the 30 days kept
            batch = Batch()
            for seq in range(2000):
                batch.add("positions", (old + seq, device.id, seq, old + seq, True, 42.3,
                                        140.9, None, None, None, None, None))
            assert store.write(batch).stored == 2000
            filler = fill(disk)
            with pytest.raises(StorageFull):
                store.apply_retention({"positions": 30}, old + 40 * 86_400_000)
            assert store.counts()["positions"] == 2000  # nothing half done
            filler.unlink()
            assert store.apply_retention({"positions": 30}, old + 40 * 86_400_000) == \
                {"positions": 2000}
        finally:
            store.close()


# --- the broker side: the collector's connection cut, the embedded broker restarted ----

def restart_embedded_broker(server: Server, down_s: float) -> tuple[int, int]:
    """Stop amqtt (its sessions and queues are in memory: gone) and start a new one on
    the same port, as a restart of `machikit serve`'s broker part would. Returns when
    the stop began and when the new broker was listening (Unix ms)."""
    assert server.broker is not None
    stopping = now_ms()
    server.broker.stop()
    time.sleep(down_s)
    s = server.settings
    server.broker = EmbeddedBroker(s.embedded_mqtt_host, s.embedded_mqtt_port, s.data_dir,
                                   wait_for_collector=True)
    server.broker.start()
    return stopping, now_ms()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def subscribed_at(collector: Collector) -> int:
    """When the collector's new subscription is in place (Unix ms)."""
    assert wait_until(collector.subscribed.is_set, timeout=30, every=0.01), "no resubscribe"
    return now_ms()


def test_embedded_broker_restart(tmp_path: Path) -> None:
    """The collector reconnects and subscribes again (the new broker knows no session),
    the device resends what the old broker never acknowledged, and nothing is stored
    twice or lost: on stop the broker reads no more from devices and lets the collector
    take what it holds; the new one lets devices in once the collector has subscribed."""
    town = unique_town()
    with embedded_stack(tmp_path, town) as stack:
        stack.storage.add_device(town, "bus-01", "bus")
        db_url = stack.server.settings.database()
        pub = stack.publisher("bus")
        collector = stack.server.collector
        assert collector is not None
        generation = collector.generation
        with Sender(pub, town, rate=100) as sender:
            time.sleep(2)
            stopping, _ = restart_embedded_broker(stack.server, down_s=0.5)
            back = subscribed_at(collector)
            time.sleep(3)
        assert pub.all_acknowledged(timeout=60)
        assert collector.generation > generation
        sent = sender.sent
        assert wait_until(lambda: max(town_seqs(db_url, town)) == sent - 1, timeout=30)
        time.sleep(1)
        lost = set(range(sent)) - town_seqs(db_url, town)
        away = {s for s, at in enumerate(sender.sent_at) if stopping - 1000 <= at <= back}
        assert not lost, f"lost {sorted(lost)}"
        assert town_rows(db_url, town) == (sent, 0)
        c = stack.counters
        assert (c.stored, c.received) == (sent, c.stored + c.duplicates)
        SUMMARY.append(Tally(f"embedded broker (amqtt) restart, {len(away)} sent meanwhile",
                             sent, sent, c.duplicates))


def test_embedded_broker_keeps_what_devices_send_before_the_collector_is_back(
        tmp_path: Path) -> None:
    """amqtt acknowledges a message even when nobody subscribes, and drops it: `serve`'s
    broker lets nobody but the collector in until the collector has subscribed."""
    town = unique_town()
    with embedded_stack(tmp_path, town) as stack:
        stack.storage.add_device(town, "bus-01", "bus")
        db_url = stack.server.settings.database()
        collector = stack.server.collector
        assert collector is not None
        restart_embedded_broker(stack.server, down_s=1.5)  # the collector's retry: 1 s, 3 s
        pub = stack.publisher("back-first")  # a device that reconnects at once
        send_positions(pub, town, range(10))
        assert pub.all_acknowledged(timeout=30)
        assert collector.subscribed.is_set()
        assert wait_until(lambda: town_rows(db_url, town) == (10, 0), 10), \
            "acknowledged by the broker, not stored"


def test_cut_connection_redelivers_and_flows_again(database_url: str, mqtt_url: str) -> None:
    """The collector's TCP connection is cut while its batch waits in the database: the
    batch commits, its PUBACKs cannot go out on a dead connection, Mosquitto sends the
    messages again after the reconnect, and they are recognised as duplicates."""
    with device_stack(database_url, mqtt_url, "bus-01", "bus") as stack:
        town, db_url = stack.town, stack.server.settings.database()
        collector = stack.server.collector
        assert collector is not None
        pub = stack.publisher("bus")
        with positions_locked(db_url):
            send_positions(pub, town, range(5))
            waiting_writer(db_url)
            kick(collector.client)
            assert wait_until(lambda: not collector.subscribed.is_set(), timeout=5)
        assert wait_until(collector.subscribed.is_set, timeout=15), "no new subscription"
        send_positions(pub, town, range(5, 10))  # data flows on the new connection
        assert pub.all_acknowledged()
        assert settle(lambda: town_rows(db_url, town), (10, 0)) == (10, 0)
        assert wait_until(lambda: stack.counters.duplicates == 5, timeout=10)
        assert (stack.counters.stored, stack.counters.received) == (10, 15)
        SUMMARY.append(Tally("collector's TCP connection cut (ss -K) mid-batch", 10, 10, 5))


# --- the device side: duplicates, a long offline replay, clock jumps -------------------

def test_same_message_three_times_is_stored_once(database_url: str, mqtt_url: str) -> None:
    with device_stack(database_url, mqtt_url, "bus-01", "bus") as stack:
        town, db_url = stack.town, stack.server.settings.database()
        pub = stack.publisher("bus")
        t = time.time_ns() // 1_000_000
        for seq in range(20):
            msg = contract.position(seq, t + seq, 42.3, 140.9)
            for _ in range(3):
                pub.send_msg(town, "bus-01", "pos", msg)
        assert pub.all_acknowledged()
        assert settle(lambda: town_rows(db_url, town), (20, 0)) == (20, 0)
        assert wait_until(lambda: stack.counters.duplicates == 40, timeout=10)
        assert (stack.counters.stored, stack.counters.received) == (20, 60)
        SUMMARY.append(Tally("each message published 3 times", 60, 20, 40))


def test_device_offline_for_hours_replays_its_outbox(tmp_path: Path, database_url: str,
                                                     mqtt_url: str) -> None:
    """A Raspberry Pi tracker comes back after three hours: its newest fix goes first (the
    map's marker), then 1,080 old fixes in batches. All stored once, the marker stays on
    the newest fix, and a second replay of the whole outbox is recognised, not stored."""
    with device_stack(database_url, mqtt_url, "bus-07", "bus") as stack:
        town, db_url = stack.town, stack.server.settings.database()
        box = Outbox(tmp_path / "outbox.sqlite")
        now = time.time_ns() // 1_000_000
        for i in range(1080):  # one fix every 10 s, from three hours ago
            box.put("pos", {"t": now - 3 * 3_600_000 + i * 10_000, "lat": 42.3 + i * 1e-5,
                            "lon": 140.9})
        box.put("pos", {"t": now, "lat": 42.5, "lon": 141.0})
        everything = box.oldest(2000)
        host, port, user, password = credentials(mqtt_url)
        link = Link(town, "bus-07", host, port, user, password)
        link.start()
        try:
            assert wait_until(lambda: link.connected, timeout=10)
            forwarder = Forwarder(box, link)
            while box.count():
                assert forwarder.pump() > 0, "the link refused a batch"
            assert forwarder.sent_live == 1
            assert settle(lambda: town_rows(db_url, town), (1081, 0)) == (1081, 0)
            # the whole outbox again, as if every PUBACK had been lost
            for start in range(0, len(everything), 50):
                assert link.send("batch", batch_payload(everything[start:start + 50]))
            assert wait_until(lambda: stack.counters.duplicates == 1081, timeout=30)
        finally:
            link.close()
            box.close()
        assert town_rows(db_url, town) == (1081, 0)
        device = stack.storage.find_devices({(town, "bus-07")})[(town, "bus-07")]
        marker = stack.storage.latest_positions([device.id], 0)[device.id]
        assert (marker["t"], marker["lat"]) == (now, 42.5), "late data moved the marker"
        # its counters agree (statuses included: the goodbye may still be on its way)
        assert wait_until(lambda: stack.counters.stored == town_stored(db_url, town), 10)
        SUMMARY.append(Tally("Pi offline 3 h, outbox replayed twice", 2162, 1081, 1081))


def test_clock_jumps_are_quarantined_or_stored_never_dropped(database_url: str,
                                                            mqtt_url: str) -> None:
    """What a device's clock can do, and what the contract makes of it (docs/protocol.md):
    reset to 2000-01-01 while saying it is synced -> quarantine `time_too_old`; a day ahead
    -> quarantine `future_time`; reset and honest (sync false, boot + uptime) -> stored at
    the collector's estimate; stepped back an hour -> stored at the device's time, and the
    live marker does not go back."""
    with device_stack(database_url, mqtt_url, "bus-01", "bus") as stack:
        town, db_url = stack.town, stack.server.settings.database()
        pub = stack.publisher("bus")
        now = time.time_ns() // 1_000_000
        y2000, day = 946_684_800_000, 86_400_000
        sends = (
            [contract.position(s, now - 10_000 + s, 42.3, 140.9) for s in range(0, 10)]
            + [contract.position(s, y2000 + s * 1000, 42.3, 140.9) for s in range(10, 15)]
            + [contract.position(s, now + day + s, 42.3, 140.9) for s in range(15, 20)]
            + [contract.position(s, None, 42.3, 140.9, boot=3, up=5000 + s) for s in range(20, 25)]
            + [contract.position(s, now - 3_600_000 + s, 42.3, 140.9) for s in range(25, 30)]
        )
        for msg in sends:
            pub.send_msg(town, "bus-01", "pos", msg)
        assert pub.all_acknowledged()
        assert settle(lambda: town_rows(db_url, town), (20, 0)) == (20, 0)
        topic = f"/{town}/bus-01/"
        assert quarantined(db_url, "time_too_old", topic) == 5
        assert quarantined(db_url, "future_time", topic) == 5
        assert quarantined(db_url, None, topic) == 10
        c = stack.counters
        assert wait_until(lambda: c.quarantined == 10)
        assert (c.received, c.stored, c.duplicates) == (30, 20, 0)
        device = stack.storage.find_devices({(town, "bus-01")})[(town, "bus-01")]
        marker = stack.storage.latest_positions([device.id], 0)[device.id]
        assert marker["t"] >= now - 10_000 + 9, "the hour-old fixes moved the marker back"
        SUMMARY.append(Tally("clock jumps (2000-01-01, +1 day, unsynced, -1 h)", 30, 20, 0, 10))
