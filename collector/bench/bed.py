"""The bench's share of the real services: a scratch database per run, the
fleet registered in it, and every persistent MQTT session it creates."""

import contextlib
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from collector.storage import open_storage
from machikit import contract

# machikit_t_*: `machikit dev services reset` drops what a killed run leaves behind.
DB_PREFIX = "machikit_t_bench_"
# If the bench is killed before it can clean up, the broker drops its sessions
# (and their queues) by itself after this long.
SESSION_EXPIRY_S = 900


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new database (TimescaleDB comes from template1), dropped afterwards."""
    name = DB_PREFIX + secrets.token_hex(4)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(url)._replace(path="/" + name))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def unique_town() -> str:
    """Each run talks in its own town, so nothing else's messages reach it."""
    return "bench" + secrets.token_hex(3)


def vehicle_names(fleet: int) -> list[str]:
    return [f"bus-{i:03d}" for i in range(1, fleet + 1)]


def prepare(db_url: str, town: str, fleet: int) -> None:
    """Schema as the collector makes it, and the fleet registered as buses."""
    storage = open_storage(db_url)
    try:
        storage.migrate()
    finally:
        storage.close()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (town, name, kind) SELECT %s, unnest(%s::text[]), 'bus'",
                     (town, vehicle_names(fleet)))


def count_rows(conn: psycopg.Connection, table: str = "positions") -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def subscription(town: str, group: str | None) -> str:
    """The collector's subscription (collector.ingest.Collector.subscription)."""
    topic = contract.subscription(town)
    return f"$share/{group}/{topic}" if group else topic


def connected_client(mqtt_url: str, client_id: str, persistent: bool = False,
                     clean: bool = True, inflight: int = 20,
                     timeout: float = 10.0) -> mqtt.Client:
    """A connected client driven by client.loop() in the caller's thread.
    inflight: unacknowledged QoS 1 publishes (paho's default is 20)."""
    target = parse_mqtt_url(mqtt_url)
    client = make_client(target, client_id, "5", persistent=persistent)
    client.max_inflight_messages_set(inflight)  # only possible before connecting
    done: list[bool] = []
    client.on_connect = lambda c, u, f, reason, p: done.append(not reason.is_failure)
    props = None
    if persistent:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect(target.host, target.port, 30, clean_start=clean, properties=props)
    _loop_until(client, lambda: bool(done), timeout)
    if done != [True]:
        raise ConnectionError(f"MQTT connect failed for {client_id}")
    return client


def _loop_until(client: mqtt.Client, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        client.loop(0.05)


class Sessions:
    """Persistent sessions the bench made: forgotten at the end, because an
    orphaned session queues every matching message forever (DESIGN §4)."""

    def __init__(self, mqtt_url: str) -> None:
        self.mqtt_url = mqtt_url
        self.client_ids: list[str] = []

    def create(self, client_id: str, topic: str) -> None:
        """The session a collector resumes: it queues from now on, even while
        nobody is connected. Same subscription options as the collector."""
        self.client_ids.append(client_id)
        client = connected_client(self.mqtt_url, client_id, persistent=True)
        granted: list[bool] = []
        client.on_subscribe = lambda c, u, mid, codes, p: granted.append(
            all(not code.is_failure for code in codes))
        client.subscribe(topic, options=mqtt.SubscribeOptions(qos=1, retainHandling=1))
        _loop_until(client, lambda: bool(granted), 10.0)
        client.disconnect()
        if granted != [True]:
            raise ConnectionError(f"subscription {topic} refused for {client_id}")

    def track(self, client_id: str) -> None:
        self.client_ids.append(client_id)

    def forget_all(self) -> None:
        for client_id in self.client_ids:
            forget_session(self.mqtt_url, client_id)
        self.client_ids.clear()


def forget_session(mqtt_url: str, client_id: str) -> None:
    """Clean start with expiry 0: the broker drops the session and its queue."""
    client = connected_client(mqtt_url, client_id)
    client.disconnect()


def clear_retained(mqtt_url: str, topics: list[str]) -> None:
    """An empty retained message deletes the retained one (the stats topics)."""
    if not topics:
        return
    client = connected_client(mqtt_url, "bench-clear-" + secrets.token_hex(3))
    infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
    _loop_until(client, lambda: all(i.is_published() for i in infos), 10.0)
    client.disconnect()


def environment(db_url: str) -> dict[str, str]:
    """Server settings that decide the numbers (fsync, commit mode, versions)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
            " current_setting('fsync'), current_setting('shared_buffers'),"
            " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()
    assert row is not None
    keys = ("postgres", "synchronous_commit", "fsync", "shared_buffers", "timescaledb")
    return dict(zip(keys, map(str, row), strict=True))


def broker_version(mqtt_url: str) -> str:
    """Mosquitto says it in a retained $SYS message."""
    found: list[str] = []
    client = connected_client(mqtt_url, "bench-sys-" + secrets.token_hex(3))
    client.on_message = lambda c, u, m: found.append(m.payload.decode(errors="replace"))
    client.subscribe("$SYS/broker/version", 0)
    _loop_until(client, lambda: bool(found), 2.0)
    client.disconnect()
    return found[0] if found else "?"
