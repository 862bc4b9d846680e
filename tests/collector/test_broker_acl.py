"""The generated passwd + acl files, enforced by a real Mosquitto and by the embedded broker.

The Mosquitto here is a second instance (never the shared test-bed one): the same
Mosquitto 2.0.21 binary, run chrooted in the test bed's Debian root as
machikit/testbed/mosquitto.py does, on a free port, with its files under the root's
/tmp/machikit-acl-<random>/. It is stopped and its folder removed afterwards.
"""

import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.broker import COLLECTOR_USER, EmbeddedBroker, broker_dir
from collector.registry import (
    ADMIN_USER,
    DASHBOARD_USER,
    add_device,
    new_password,
    revoke,
    write_broker_files,
)
from collector.storage import Storage
from machikit import credentials
from tests.collector.helpers import free_port, unique_town, wait_until
from tests.collector.stacks import migrated

SERVICE = {user: credentials.new_password() for user in (COLLECTOR_USER, ADMIN_USER,
                                                         DASHBOARD_USER)}
SERVICE_HASHES = {user: credentials.hash_password(pw) for user, pw in SERVICE.items()}


class Client:
    """A plain MQTT 3.1.1 client that records what the broker answers and sends."""

    def __init__(self, port: int, user: str | None, password: str | None = None,
                 client_id: str | None = None, clean: bool = True) -> None:
        self.port = port
        self.connack: int | None = None
        self.messages: list[str] = []
        self.granted: list[int] = []
        self.disconnects = 0
        self._connected, self._subscribed = threading.Event(), threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                             client_id=client_id or own_client_id(user),
                             clean_session=clean)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port, 10)
        self.c.loop_start()
        self._connected.wait(5)

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        self.connack = int(rc.value)  # type: ignore[attr-defined]
        self._connected.set()

    def _on_disconnect(self, c: mqtt.Client, u: object, f: object, rc: object,
                       p: object) -> None:
        self.disconnects += 1

    def _on_subscribe(self, c: mqtt.Client, u: object, m: int, codes: list, p: object) -> None:
        self.granted = [int(code.value) for code in codes]
        self._subscribed.set()

    def subscribe(self, *topics: str) -> list[int]:
        self._subscribed.clear()
        self.c.subscribe([(topic, 1) for topic in topics])
        assert self._subscribed.wait(5)
        return self.granted

    def publish(self, topic: str) -> None:
        self.c.publish(topic, b"{}", qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def own_client_id(user: str | None) -> str:
    """A device logs in with its login name as client id (its own, nobody else's)."""
    return user if user and "." in user else "acl-" + secrets.token_hex(4)


def accepted(port: int, user: str | None, password: str | None = None) -> bool:
    try:
        client = Client(port, user, password)
    except OSError:  # not listening yet (a just-started daemon)
        return False
    client.close()
    return client.connack == 0


@dataclass
class Broker:
    port: int
    files: Path  # where write_broker_files writes passwd and acl
    reload: Callable[[], None]  # make the broker read the rewritten files
    device_port: int = 0  # where devices connect (Mosquitto: its own listener); 0: port
    name: str = "embedded"

    def __post_init__(self) -> None:
        self.device_port = self.device_port or self.port


class SecondMosquitto:
    def __init__(self, root: Path) -> None:
        self.root, self.port, self.device_port = root, free_port(), free_port()
        self.inner = f"/tmp/machikit-acl-{secrets.token_hex(4)}"
        self.folder = root / self.inner.lstrip("/")
        self.folder.mkdir(parents=True)
        self._own(self.folder, 0o755)

    def _own(self, path: Path, mode: int) -> None:
        # Mosquitto reads passwd/acl (also on SIGHUP) as the root's `mosquitto` user.
        from machikit.testbed.system import chown

        chown(self.root, path, "mosquitto", mode)

    def start(self) -> None:
        from machikit.testbed.system import run_in_root

        for name in ("passwd", "acl"):
            self._own(self.folder / name, 0o600)
        (self.folder / "mosquitto.conf").write_text("\n".join([
            f"listener {self.port} 127.0.0.1",
            # devices' listener: a client id is its login name, so nobody takes over another's
            f"listener {self.device_port} 127.0.0.1", "use_username_as_clientid true",
            "allow_anonymous false",
            f"password_file {self.inner}/passwd", f"acl_file {self.inner}/acl",
            f"pid_file {self.inner}/mosquitto.pid", f"log_dest file {self.inner}/mosquitto.log",
            # the queue limits of deploy/compose.yaml
            "max_queued_messages 2000000", "max_inflight_messages 1000",
            "message_size_limit 262144", "persistence false", ""]))
        result = run_in_root(self.root, ["mosquitto", "-c", f"{self.inner}/mosquitto.conf", "-d"])
        assert result.returncode == 0, result.stderr
        assert wait_until(lambda: accepted(self.port, COLLECTOR_USER, SERVICE[COLLECTOR_USER]),
                          15), self.log()

    def pid(self) -> int:
        return int((self.folder / "mosquitto.pid").read_text().split()[0])

    def reload(self) -> None:
        for name in ("passwd", "acl"):
            self._own(self.folder / name, 0o600)
        os.kill(self.pid(), signal.SIGHUP)

    def stop(self) -> None:
        from machikit.testbed.system import terminate

        if (self.folder / "mosquitto.pid").exists():
            terminate(self.pid(), timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else "(no log)"


def mosquitto_root() -> Path:
    try:
        from machikit.testbed.layout import current

        root = current().root
    except ImportError:
        root = Path("/nonexistent")
    if os.geteuid() != 0 or not (root / "usr/sbin/mosquitto").exists():
        pytest.skip("needs root and the test bed's Mosquitto (machikit dev services up)")
    return root


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with migrated(f"sqlite:///{tmp_path}/registry.db") as store:
        yield store


@pytest.fixture(params=["mosquitto", "embedded"])
def broker(request: pytest.FixtureRequest, tmp_path: Path, storage: Storage) -> Iterator[Broker]:
    write_broker_files(storage, broker_dir(tmp_path), SERVICE_HASHES)
    if request.param == "mosquitto":
        mosquitto = SecondMosquitto(mosquitto_root())
        try:  # stopped and removed even if it never answered
            write_broker_files(storage, mosquitto.folder, SERVICE_HASHES)
            mosquitto.start()
            yield Broker(mosquitto.port, mosquitto.folder, mosquitto.reload,
                         mosquitto.device_port, "mosquitto")
        finally:
            mosquitto.stop()
        return
    port = free_port()
    embedded = EmbeddedBroker("127.0.0.1", port, tmp_path)
    embedded.start()
    # The embedded broker reads both files on every login / topic check.
    yield Broker(port, broker_dir(tmp_path), lambda: None)
    embedded.stop()


def rewrite(storage: Storage, broker: Broker) -> None:
    write_broker_files(storage, broker.files, SERVICE_HASHES)
    broker.reload()


def test_device_writes_only_its_own_topics(storage: Storage, broker: Broker) -> None:
    town = unique_town()
    mine = add_device(storage, town, "bus-01", "bus")
    other = add_device(storage, town, "bus-02", "bus")
    rewrite(storage, broker)
    collector = Client(broker.port, COLLECTOR_USER, SERVICE[COLLECTOR_USER])
    device = Client(broker.port, mine.user, mine.password)
    assert collector.connack == device.connack == 0
    collector.subscribe(f"machikit/v1/{town}/#")
    device.publish(f"machikit/v1/{town}/bus-02/pos")  # another device's topic
    device.publish(f"machikit/v1/{town}/bus-01/cmd")  # its own, but read-only
    device.publish(f"machikit/v1/{town}/bus-01/pos")  # arrives after the refused ones
    assert wait_until(lambda: f"machikit/v1/{town}/bus-01/pos" in collector.messages, 10)
    assert collector.messages == [f"machikit/v1/{town}/bus-01/pos"]
    assert accepted(broker.port, other.user, other.password)
    device.close()
    collector.close()


def test_device_reads_only_its_own_cmd(storage: Storage, broker: Broker) -> None:
    town = unique_town()
    mine = add_device(storage, town, "gauge-1", "snow_gauge")
    add_device(storage, town, "gauge-2", "snow_gauge")
    rewrite(storage, broker)
    device = Client(broker.port, mine.user, mine.password)
    granted = device.subscribe(f"machikit/v1/{town}/gauge-1/cmd",
                               f"machikit/v1/{town}/gauge-2/cmd", f"machikit/v1/{town}/#")
    assert granted[0] == 1
    admin = Client(broker.port, ADMIN_USER, SERVICE[ADMIN_USER])
    admin.publish(f"machikit/v1/{town}/gauge-2/cmd")
    admin.publish(f"machikit/v1/{town}/gauge-1/cmd")
    assert wait_until(lambda: device.messages, 10)
    assert device.messages == [f"machikit/v1/{town}/gauge-1/cmd"]
    admin.close()
    device.close()


def test_device_sees_its_own_status_and_no_one_elses(storage: Storage, broker: Broker) -> None:
    town = unique_town()
    mine = add_device(storage, town, "gauge-1", "snow_gauge")
    other = add_device(storage, town, "gauge-2", "snow_gauge")
    rewrite(storage, broker)
    device = Client(broker.port, mine.user, mine.password)
    # Exact topics: Mosquitto filters each message, the embedded broker refuses a wildcard
    # subscription that reaches further than the rules (docs/operations.md §8).
    device.subscribe(f"machikit/v1/{town}/gauge-1/status", f"machikit/v1/{town}/gauge-2/status")
    neighbour = Client(broker.port, other.user, other.password)
    neighbour.publish(f"machikit/v1/{town}/gauge-2/status")
    device.publish(f"machikit/v1/{town}/gauge-1/status")
    assert wait_until(lambda: device.messages, 10)
    assert device.messages == [f"machikit/v1/{town}/gauge-1/status"]
    neighbour.close()
    device.close()


def test_anonymous_wrong_password_and_revoked_are_refused(storage: Storage,
                                                          broker: Broker) -> None:
    town = unique_town()
    kept, gone = add_device(storage, town, "s1", "stall"), add_device(storage, town, "s2", "stall")
    rewrite(storage, broker)
    assert accepted(broker.port, gone.user, gone.password)
    assert not accepted(broker.port, None)
    assert not accepted(broker.port, kept.user, "guess")
    assert not accepted(broker.port, kept.user, gone.password)
    assert not accepted(broker.port, "machikit-dashboard", "")
    revoke(storage, town, "s2")
    password = new_password(storage, town, "s1")
    rewrite(storage, broker)
    assert wait_until(lambda: not accepted(broker.port, gone.user, gone.password), 10)
    assert not accepted(broker.port, kept.user, kept.password)  # the old password is gone
    assert accepted(broker.port, kept.user, password)
