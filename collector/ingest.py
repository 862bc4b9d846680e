"""The collector: MQTT (QoS 1) in, database rows out, nothing lost.

Rules (docs/design.md explains each):
- persistent session + fixed client id: the broker keeps our messages while we are away;
- a message is acknowledged only after its rows are committed, so a crash at any
  moment means redelivery, never loss; (device, seq, time) makes redelivery harmless;
- "commit when idle": take whatever is waiting (up to batch_max), commit, repeat;
- while the database is down nothing is acknowledged, the broker stops sending at
  Receive Maximum, and memory stays bounded; we retry with backoff until it is back.
"""

import argparse
import gc
import logging
import queue
import signal
import threading
import time

import paho.mqtt.client as mqtt

from collector import intake
from collector.intake import Incoming
from collector.mqtt import connect, make_client
from collector.retention import RetentionSchedule
from collector.settings import Settings, load_settings, parse_mqtt_url
from collector.stats import Counters, StatsReporter
from collector.storage import Storage, StorageUnavailable, WriteResult, open_storage
from collector.storage.base import StorageFull
from machikit import contract
from machikit.texts import say

log = logging.getLogger("machikit.collector")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Collector:
    def __init__(self, settings: Settings, storage: Storage, mqtt_url: str) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = intake.Registry(storage)
        self.target = parse_mqtt_url(mqtt_url)
        # Bounded: with MQTT 5 the broker never sends more than receive_maximum
        # unacknowledged messages; with 3.1.1 a full queue blocks the network thread.
        self.inbox: queue.Queue[Incoming] = queue.Queue(maxsize=settings.receive_maximum)
        self.counters = Counters()
        self.reporter = StatsReporter(self)
        self.generation = 0
        self.leaving = False  # set when the server stops: the broker goes first, quietly
        self.subscribed = threading.Event()
        self.client = self._make_client()

    # --- MQTT side (runs in paho's network thread) ------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = make_client(self.target, s.mqtt_client_id, s.protocol(), persistent=True,
                             manual_ack=True, ca_file=str(s.mqtt_ca_file or "") or None)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def subscription(self) -> str:
        topic = contract.subscription(self.settings.town)
        group = self.settings.mqtt_shared_group
        return f"$share/{group}/{topic}" if group else topic

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.error(say("mqtt_refused", detail=reason))
            return
        if self.settings.protocol() == "5":
            # retainHandling=1: retained messages only for a new subscription, not each reconnect
            options = mqtt.SubscribeOptions(qos=1, retainHandling=1)
            client.subscribe(self.subscription(), options=options)
        else:
            client.subscribe(self.subscription(), qos=1)
        log.info(say("mqtt_connected", host=self.target.host, port=self.target.port))

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        # Messages of the old connection can no longer be acknowledged: the broker
        # sends them again on the next one, and the dedupe key stores them once.
        self.generation += 1
        self.subscribed.clear()
        if reason.is_failure and not self.leaving:
            log.warning(say("mqtt_lost", detail=reason))

    def _on_message(self, client, userdata, message):
        self.inbox.put(Incoming(message.topic, message.payload, now_ms(), message.mid,
                                message.qos, message.retain, self.generation))

    # --- writer side (runs in the caller's thread) --------------------------------

    def start(self) -> None:
        connect(self.client, self.target, persistent=True,
                session_expiry_s=self.settings.session_expiry_s,
                receive_maximum=self.settings.receive_maximum)
        self.client.loop_start()
        self.reporter.start()
        log.info(say("collector_started", client_id=self.settings.mqtt_client_id,
                     topic=self.subscription()))

    def run(self, stop: threading.Event) -> None:
        """Store and acknowledge until `stop` is set."""
        retention = RetentionSchedule(self.storage, self.settings)
        while not stop.is_set():
            messages = self._take()
            if messages and self._store(messages, stop):
                self._acknowledge(messages)
            retention.maybe_run()

    def close(self) -> None:
        self.reporter.stop()
        self.client.disconnect()
        self.client.loop_stop()
        self.storage.close()

    def _take(self) -> list[Incoming]:
        """Commit when idle: wait for one message, then take what is already waiting."""
        try:
            messages = [self.inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(messages) < self.settings.batch_max:
            try:
                messages.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return messages

    def _store(self, messages: list[Incoming], stop: threading.Event) -> bool:
        """Commit the messages' rows, retrying while the database is away.
        False if asked to stop first (then nothing is acknowledged)."""
        self.counters.received += len(messages)
        good, refused = intake.check(messages)
        delay = 0.5
        while True:
            try:
                self._count(self._write(good, refused), messages, good)
                return True
            except StorageUnavailable as err:
                self.counters.db_errors += 1
                problem = "db_disk_full" if isinstance(err, StorageFull) else "db_connect_failed"
                log.error(say(problem, attempt=self.counters.db_errors, delay=delay, detail=err))
                if stop.wait(delay):
                    return False
                delay = min(delay * 2, 30.0)

    def _write(self, good: list[intake.Checked], refused) -> WriteResult:
        batch = intake.to_rows(good, _copy(refused), self.registry, self.storage)
        try:
            return self.storage.write(batch)
        except StorageUnavailable:
            raise
        except Exception:  # a row the database refuses must not stop the pipeline
            log.exception("batch refused by the database; writing one message at a time")
            return self._write_one_by_one(good, refused)

    def _write_one_by_one(self, good, refused) -> WriteResult:
        total = self.storage.write(_copy(refused))
        for checked in good:
            try:
                result = self.storage.write(
                    intake.to_rows([checked], intake.Batch(), self.registry, self.storage))
            except StorageUnavailable:
                raise
            except Exception as err:
                row = intake.quarantine_row(checked.incoming, "storage_error", str(err)[:500],
                                            checked.msg if checked.from_batch else None)
                bad = intake.Batch()
                bad.add("quarantine", row)
                result = self.storage.write(bad)
            total.stored += result.stored
            total.duplicates += result.duplicates
            total.quarantined += result.quarantined
        return total

    def _count(self, result: WriteResult, messages: list[Incoming],
               good: list[intake.Checked]) -> None:
        committed = now_ms()
        c = self.counters
        c.stored += result.stored
        c.duplicates += result.duplicates
        c.quarantined += result.quarantined
        c.batches += 1
        c.lag_ms = committed - min(m.received_ms for m in messages)
        c.ages.extend(committed - g.msg["t"] for g in good if "t" in g.msg)

    def _acknowledge(self, messages: list[Incoming]) -> None:
        generation = self.generation
        for m in messages:
            if m.generation == generation:
                self.client.ack(m.mid, m.qos)


def _copy(batch: intake.Batch) -> intake.Batch:
    fresh = intake.Batch()
    for table, rows in batch.rows.items():
        fresh.rows[table].extend(rows)
    return fresh


# --- `machikit collect` ------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")


def run_collect(args: argparse.Namespace) -> int:
    """One collector worker against an external broker (Mosquitto) and database."""
    settings = load_settings(args.config)
    if settings.mqtt_url is None:
        raise SystemExit(say("config_invalid", detail="MACHIKIT_MQTT_URL is required"))
    storage = open_storage(settings.database())
    migrate_when_ready(storage, threading.Event())
    collector = Collector(settings, storage, settings.mqtt_url)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    gc.freeze()  # start-up objects never die: keep full collections (15 ms pauses) short
    try:
        collector.run(stop)
    finally:
        collector.close()
    log.info(say("stopped"))
    return 0


def migrate_when_ready(storage: Storage, stop: threading.Event) -> None:
    """Bring the schema up to date, waiting for the database if it is not up yet."""
    delay, attempt = 1.0, 0
    while True:
        try:
            storage.migrate()
            info = storage.info()
            if storage.engine == "postgres":
                log.info(say("timescaledb_found", version=info["timescaledb"],
                             license=info["license"]))
            return
        except StorageUnavailable as err:
            attempt += 1
            log.error(say("db_connect_failed", attempt=attempt, delay=delay, detail=err))
            if stop.wait(delay):
                raise SystemExit(1) from err
            delay = min(delay * 2, 30.0)
