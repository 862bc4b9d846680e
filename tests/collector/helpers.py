"""Helpers for collector tests: fresh databases, publishers, waiting."""

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg

from collector.mqtt import connect, make_client
from collector.settings import parse_mqtt_url
from machikit import contract


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new database for one test module (TimescaleDB comes from template1)."""
    name = "machikit_t_" + secrets.token_hex(4)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def unique_town() -> str:
    """Each test talks in its own town, so tests never see each other's messages."""
    return "t" + secrets.token_hex(4)


class Publisher:
    """A device-like MQTT client publishing QoS 1; remembers every message info."""

    def __init__(self, mqtt_url: str, client_id: str, protocol: str = "5") -> None:
        self.target = parse_mqtt_url(mqtt_url)
        self.client_id = client_id
        self.protocol = protocol
        self.client = make_client(self.target, client_id, protocol, persistent=True)
        self.client.max_queued_messages_set(0)  # keep everything while the broker is away
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.acknowledged: set[int] = set()
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        # paho keeps (and resends) messages published while disconnected; their
        # MQTTMessageInfo.rc still says "not connected", so count the broker's PUBACKs.
        self.client.on_publish = lambda c, u, mid, *_: self.acknowledged.add(mid)
        connect(self.client, self.target, persistent=True, session_expiry_s=600)
        self.client.loop_start()
        if not connected.wait(10):
            raise TimeoutError(f"publisher {client_id} could not connect")

    def send(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def send_msg(self, town: str, device: str, channel: str, msg: dict) -> None:
        self.send(contract.topic(town, device, channel), contract.encode(msg))

    def all_acknowledged(self, timeout: float = 60.0) -> bool:
        return wait_until(lambda: all(i.mid in self.acknowledged for i in self.infos), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forget_session(mqtt_url: str, client_id: str) -> None:
    """Remove a persistent session from the broker (orphans would queue forever)."""
    target = parse_mqtt_url(mqtt_url)
    client = make_client(target, client_id, "5")
    client.connect(target.host, target.port, clean_start=True)
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def credentials(mqtt_url: str) -> tuple[str, int, str, str]:
    target = parse_mqtt_url(mqtt_url)
    return target.host, target.port, target.username or "", target.password or ""


def clear_retained(mqtt_url: str, topics: list[str]) -> None:
    """An empty retained message removes the broker's copy: tests leave nothing behind."""
    publish(mqtt_url, [(topic, b"") for topic in topics], retain=True)


def publish(mqtt_url: str, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    """Publish (topic, payload) pairs with QoS 1 as the test's own client, and wait for
    the broker's acknowledgements."""
    host, port, user, password = credentials(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"test-clean-{os.getpid()}-{time.monotonic_ns()}")
    client.username_pw_set(user, password)
    client.connect(host, port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
