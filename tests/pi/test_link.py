"""pi/link.py against the test bed's real Mosquitto, and against an embedded broker (amqtt)
that the test starts and stops itself for the outage tests (the shared Mosquitto is never
stopped: other tests use it at the same time).

TLS against a real TLS Mosquitto (certificate and host name checks) is in test_link_tls.py.
Here: tls=True sets up paho's TLS, and a plain-TCP broker then refuses the handshake, so
the link stays offline and send() answers False without raising.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.broker import EmbeddedBroker, local_user
from machikit import contract
from pi.link import Link
from tests.collector.helpers import (
    clear_retained,
    credentials,
    free_port,
    publish,
    unique_town,
    wait_until,
)
from tests.conftest import REPO
from tests.firmware.test_mqtt import Retained

pytestmark = pytest.mark.services

PAYLOAD = contract.encode(contract.position(0, 1795650000000, 42.31, 140.97))


def make_link(mqtt_url: str, town: str, device: str = "bus-01", **options: object) -> Link:
    host, port, user, password = credentials(mqtt_url)
    return Link(town, device, host, port, user, password, **options)  # type: ignore[arg-type]


@pytest.fixture
def town(mqtt_url: str) -> Iterator[str]:
    """A town of its own; its retained status and cmd topics are cleared afterwards."""
    name = unique_town()
    yield name
    clear_retained(mqtt_url, [contract.topic(name, "bus-01", ch)
                              for ch in (contract.STATUS, contract.COMMAND)])


def test_online_status_is_retained_with_health_and_goodbye_says_offline(
    mqtt_url: str, town: str
) -> None:
    link = make_link(mqtt_url, town, fw="pi-0.1")
    link.health.update({"buffered": 12, "dropped": 0, "sats": 9, "hdop": 0.9, "rssi": None})
    link.start()
    status = Retained(mqtt_url, contract.topic(town, "bus-01", contract.STATUS))
    try:
        assert wait_until(lambda: link.connected, 10)
        assert wait_until(lambda: status.latest() is not None, 10)
        assert status.latest() == {"v": 1, "state": "online", "fw": "pi-0.1", "buffered": 12,
                                   "dropped": 0, "sats": 9, "hdop": 0.9}  # None is left out
        link.health.update({"buffered": 0, "sync": True})
        assert link.send_status()
        assert wait_until(lambda: (status.latest() or {}).get("buffered") == 0, 5)
        latest = status.latest() or {}
        assert latest["sync"] is True and abs(latest["t"] - time.time() * 1000) < 5000
        contract.decode(contract.STATUS, contract.encode(latest), time.time_ns() // 10**6)
        assert link.send("pos", PAYLOAD)
        link.close()
        assert wait_until(lambda: (status.latest() or {}).get("state") == "offline", 5)
        assert status.latest() == {"v": 1, "state": "offline"}
        assert not link.connected and not link.send("pos", PAYLOAD)
    finally:
        link.close()
        status.close()


def test_commands_reach_the_callback_and_bad_ones_are_ignored(mqtt_url: str, town: str) -> None:
    cmd_topic = contract.topic(town, "bus-01", contract.COMMAND)
    # Retained before the device is on: it gets it at connect.
    publish(mqtt_url, [(cmd_topic, contract.encode(contract.command({"interval_s": 60})))],
            retain=True)
    got: list[dict] = []
    link = make_link(mqtt_url, town, on_command=got.append)
    link.start()
    try:
        assert wait_until(lambda: got == [{"v": 1, "set": {"interval_s": 60}}], 10)
        bad = [b"not json", b'{"v":2,"set":{}}', b'{"v":1}', b"[1,2]", b"\xff\xfe"]
        publish(mqtt_url, [(cmd_topic, payload) for payload in bad])
        publish(mqtt_url, [(cmd_topic, contract.encode(contract.command({"interval_s": 5})))])
        assert wait_until(lambda: len(got) == 2, 10)
        assert got[1] == {"v": 1, "set": {"interval_s": 5}}
        assert link.bad_commands == len(bad)
        assert link.connected and link.send("pos", PAYLOAD)  # still working
    finally:
        link.close()


def test_a_handler_that_raises_does_not_break_the_link(mqtt_url: str, town: str) -> None:
    def broken(msg: dict) -> None:
        raise RuntimeError("bug in the app")

    link = make_link(mqtt_url, town, on_command=broken)
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        cmd_topic = contract.topic(town, "bus-01", contract.COMMAND)
        publish(mqtt_url, [(cmd_topic, contract.encode(contract.command({"x": 1})))])
        time.sleep(0.5)
        assert link.connected and link.send("pos", PAYLOAD)
    finally:
        link.close()


LINK_PROCESS = r"""
import sys, time
from pi.link import Link
host, port, user, password, town = sys.argv[1:6]
link = Link(town, "bus-01", host, int(port), user, password, keepalive=2)
link.start()
while not link.connected:
    time.sleep(0.05)
print("online", flush=True)
time.sleep(600)
"""


def test_the_last_will_says_offline_after_kill_9(mqtt_url: str, town: str) -> None:
    host, port, user, password = credentials(mqtt_url)
    status = Retained(mqtt_url, contract.topic(town, "bus-01", contract.STATUS))
    proc = subprocess.Popen([sys.executable, "-c", LINK_PROCESS, host, str(port), user,
                             password, town], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "online"
        assert wait_until(lambda: (status.latest() or {}).get("state") == "online", 10)
        os.kill(proc.pid, signal.SIGKILL)
        # The kernel closes the socket, so Mosquitto usually says it at once; at the latest
        # after 1.5 x keepalive (3 s) without a packet.
        assert wait_until(lambda: (status.latest() or {}).get("state") == "offline", 1.5 * 2 + 3)
        assert status.latest() == contract.offline_will()
    finally:
        proc.kill()
        proc.wait()
        status.close()


def test_no_broker_means_false_not_an_exception(tmp_path: Path) -> None:
    link = Link(unique_town(), "bus-01", "127.0.0.1", free_port(), "u", "p")
    link.start()
    try:
        start = time.monotonic()
        assert link.send("pos", PAYLOAD) is False
        assert time.monotonic() - start < 1  # no waiting while offline
        time.sleep(1.5)  # a reconnect attempt or two
        assert not link.connected and link.send_status() is False
    finally:
        link.close()


def test_tls_against_a_plain_broker_fails_softly(mqtt_url: str, town: str) -> None:
    link = make_link(mqtt_url, town, tls=True)
    assert link.client._ssl_context is not None  # tls_set() was called (system CAs)
    link.start()
    try:
        time.sleep(2)  # the TLS handshake against a plain MQTT port fails, and is retried
        assert not link.connected and link.send("pos", PAYLOAD) is False
    finally:
        link.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[list[EmbeddedBroker], int, str, str]]:
    """An amqtt broker this test may stop and start; (brokers, port, town, device password)."""
    port = free_port()
    town = unique_town()
    password = local_user(tmp_path, f"{town}.bus-01")  # a device login: <town>.<name>
    brokers = [EmbeddedBroker("127.0.0.1", port, tmp_path)]
    brokers[0].start()
    yield brokers, port, town, password
    brokers[-1].stop()


def test_send_is_false_while_the_broker_is_down_and_true_when_it_is_back(
    tmp_path: Path, embedded: tuple[list[EmbeddedBroker], int, str, str]
) -> None:
    brokers, port, town, password = embedded
    link = Link(town, "bus-01", "127.0.0.1", port, f"{town}.bus-01", password, keepalive=5)
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        assert link.send("pos", PAYLOAD) is True
        brokers[0].stop()
        assert wait_until(lambda: not link.connected, 10)
        assert link.send("pos", PAYLOAD, timeout=2) is False
        time.sleep(2)
        brokers.append(EmbeddedBroker("127.0.0.1", port, tmp_path))
        brokers[-1].start()
        assert wait_until(lambda: link.connected, 30)  # backoff 1, 2, 4 s ... at most 60 s
        assert link.send("pos", PAYLOAD) is True
        assert link.connects == 2
    finally:
        link.close()
