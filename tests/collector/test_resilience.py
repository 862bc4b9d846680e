"""Nothing is lost when the collector, PostgreSQL or Mosquitto dies mid-stream.

The collector runs as its own process (`machikit collect`), as in production; a
device-like publisher streams ~400 positions/s (QoS 1) while the test kills or
restarts one part. At the end the table must hold exactly the messages sent.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from collector.stats import STATS_TOPIC
from collector.storage import Storage, StorageUnavailable, open_storage
from machikit import contract, testbed
from tests.collector.helpers import (
    Publisher,
    forget_session,
    fresh_database,
    unique_town,
    wait_until,
)

RATE = 400  # messages per second
pytestmark = pytest.mark.slow


def controllable() -> None:
    """These tests stop and start the test bed's servers."""
    if not testbed.is_controllable():
        pytest.skip("needs the project's test bed, run as root (machikit dev services up)")


class CollectorProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "machikit", "collect"],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # a power cut, as far as the collector knows
        self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(30)


class Stream:
    """Publishes `count` positions at RATE per second in a background thread."""

    def __init__(self, publisher: Publisher, town: str, count: int) -> None:
        self.publisher, self.town, self.count = publisher, town, count
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        t0 = time.time_ns() // 1_000_000
        for seq in range(self.count):
            self.publisher.send_msg(self.town, "bus-01", "pos", contract.position(
                seq, t0 + seq * 10, 42.3 + seq * 1e-6, 140.9, speed=8.0))
            delay = start + (seq + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def __enter__(self) -> "Stream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join()


@contextlib.contextmanager
def setup(engine: str, tmp_path: Path, database_url: str, mqtt_url: str
          ) -> Iterator[tuple[CollectorProcess, Publisher, Storage, str]]:
    town = unique_town()
    with _database(engine, tmp_path, database_url) as db_url:
        storage = open_storage(db_url)
        storage.migrate()
        storage.add_device(town, "bus-01", "bus")
        env = {**os.environ, "MACHIKIT_DATABASE_URL": db_url, "MACHIKIT_MQTT_URL": mqtt_url,
               "MACHIKIT_TOWN": town, "MACHIKIT_MQTT_CLIENT_ID": f"collector-{town}",
               "MACHIKIT_STATS_INTERVAL_S": "1", "MACHIKIT_DATA_DIR": str(tmp_path)}
        collector = CollectorProcess(env, tmp_path / "collector.log")
        collector.start()
        publisher = Publisher(mqtt_url, f"device-{town}")
        try:
            # Until the collector's first subscription exists nobody keeps a message for
            # it; from then on its persistent session does, even while it is dead.
            assert wait_until(lambda: _probe(publisher, storage, town), timeout=30, every=0.5)
            yield collector, publisher, storage, town
        finally:
            collector.stop()
            publisher.close()
            for client_id in (f"collector-{town}", f"device-{town}"):
                forget_session(mqtt_url, client_id)
            storage.close()


def _probe(publisher: Publisher, storage: Storage, town: str) -> bool:
    publisher.send_msg(town, "bus-01", "status", contract.status("online"))
    return storage.counts()["device_status"] > 0


@contextlib.contextmanager
def _database(engine: str, tmp_path: Path, database_url: str) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{tmp_path}/collector.db"
    else:
        with fresh_database(database_url) as url:
            yield url


def positions(storage: Storage) -> int:
    try:
        return storage.counts()["positions"]
    except StorageUnavailable:
        return -1


def assert_all_stored(storage: Storage, publisher: Publisher, count: int) -> None:
    assert publisher.all_acknowledged(timeout=90), "the broker did not take every message"
    wait_until(lambda: positions(storage) >= count, timeout=90)
    time.sleep(1.0)
    assert positions(storage) == count  # nothing lost, nothing twice


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_sigkilled_collector_loses_nothing(engine: str, tmp_path: Path, database_url: str,
                                           mqtt_url: str) -> None:
    count = 6000
    with setup(engine, tmp_path, database_url, mqtt_url) as (collector, pub, storage, town):
        with Stream(pub, town, count):
            for _ in range(3):
                time.sleep(2)
                collector.kill()
                time.sleep(2)  # ~800 messages wait in Mosquitto meanwhile
                before = positions(storage)
                collector.start()
                # killed again the moment it starts draining that backlog
                wait_until(lambda b=before: positions(storage) > b, timeout=20, every=0.005)
                collector.kill()
                collector.start()
        assert_all_stored(storage, pub, count)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_loses_nothing_and_collector_recovers(
        mode: str, tmp_path: Path, database_url: str, mqtt_url: str) -> None:
    controllable()
    count = 4000
    with setup("postgres", tmp_path, database_url, mqtt_url) as (collector, pub, storage, town):
        with Stream(pub, town, count):
            time.sleep(3)
            testbed.stop_postgres(mode)
            time.sleep(4)
            testbed.start_postgres()
        assert_all_stored(storage, pub, count)
        assert collector.alive(), "the collector must recover by itself"
        log = (tmp_path / "collector.log").read_text()
        assert "Cannot reach the database" in log


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_mosquitto_restart_loses_nothing(engine: str, tmp_path: Path, database_url: str,
                                         mqtt_url: str) -> None:
    controllable()
    count = 4000
    with setup(engine, tmp_path, database_url, mqtt_url) as (collector, pub, storage, town):
        with Stream(pub, town, count):
            time.sleep(3)
            testbed.restart_mosquitto()
        assert_all_stored(storage, pub, count)
        assert collector.alive()


def latest_stats(mqtt_url: str, client_id: str) -> dict:
    """The collector's retained counters, as `machikit stats` reads them."""
    found: list[dict] = []
    target = parse_mqtt_url(mqtt_url)
    reader = make_client(target, f"stats-reader-{client_id}")
    reader.on_connect = lambda c, *_: c.subscribe(STATS_TOPIC.format(client_id=client_id))
    reader.on_message = lambda c, u, m: found.append(json.loads(m.payload))
    reader.connect(target.host, target.port)
    reader.loop_start()
    wait_until(lambda: bool(found), timeout=5)
    reader.disconnect()
    reader.loop_stop()
    return found[-1]


def test_database_outage_keeps_memory_bounded(tmp_path: Path, database_url: str,
                                              mqtt_url: str) -> None:
    """While PostgreSQL is down the collector holds at most receive_maximum messages;
    the broker keeps the rest, and everything is stored once it is back."""
    controllable()
    count = 20_000
    with setup("postgres", tmp_path, database_url, mqtt_url) as (collector, pub, storage, town):
        assert collector.proc is not None
        memory = psutil.Process(collector.proc.pid)
        rss_before = memory.memory_info().rss
        testbed.stop_postgres("fast")
        try:
            t0 = time.time_ns() // 1_000_000
            for seq in range(count):
                pub.send_msg(town, "bus-01", "pos",
                             contract.position(seq, t0 + seq, 42.3, 140.9, speed=8.0))
            assert pub.all_acknowledged(timeout=60)  # the broker has them all
            time.sleep(2.5)  # two stats intervals while the writer waits for the database
            stats = latest_stats(mqtt_url, f"collector-{town}")
            rss_during = memory.memory_info().rss
        finally:
            testbed.start_postgres()
        assert stats["pending"] <= 1000 and stats["db_errors"] > 0
        assert rss_during - rss_before < 50 * 2**20
        assert_all_stored(storage, pub, count)
