"""A test CA, server certificates, and a second Mosquitto with TLS listeners.

The certificates are made here with the openssl command (EC P-256, valid for a few days):

  town CA      signs  good      for IP 127.0.0.1 and DNS localhost  (the town's broker)
  town CA      signs  elsewhere for DNS mqtt.elsewhere.example only (right CA, wrong host)
  stranger CA  signs  stranger  for IP 127.0.0.1 and DNS localhost  (right host, wrong CA)
  town CA      signed expired   for IP 127.0.0.1 and DNS localhost, valid in January 2020

One Mosquitto (SecondMosquitto of test_broker_acl.py, the same passwd/acl) answers on its plain
loopback port and on one TLS port per server certificate, so every test can show the one
thing that differs. Used by the collector, firmware and Pi tests of TLS.
"""

import contextlib
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.broker import COLLECTOR_USER
from collector.registry import NewDevice, add_device, write_broker_files
from collector.storage import Storage
from tests.collector.helpers import free_port, unique_town, wait_until
from tests.collector.stacks import migrated
from tests.collector.test_broker_acl import (
    SERVICE,
    SERVICE_HASHES,
    SecondMosquitto,
    mosquitto_root,
)

SERVER_NAMES = "subjectAltName=IP:127.0.0.1,DNS:localhost"
ELSEWHERE_NAMES = "subjectAltName=DNS:mqtt.elsewhere.example"
DAYS = "3"


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, encoding="utf-8",
                          check=False)
    assert done.returncode == 0, done.stderr


def _key_and_request(folder: Path, name: str, subject: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(folder / f"{name}.key"), "-out",
             str(folder / f"{name}.csr"), "-subj", subject)


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed CA certificate (PEM) and its key, as a town would make with openssl."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(folder / f"{name}.key"), "-out",
             str(folder / f"{name}.crt"), "-days", DAYS, "-subj", f"/O=machikit test/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return folder / f"{name}.crt"


def make_server(folder: Path, name: str, ca: str, names: str, days: str = DAYS) -> Path:
    """A server certificate for `names` (subjectAltName), signed by the CA `ca`."""
    _key_and_request(folder, name, f"/O=machikit test/CN={name}")
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"{names}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                          encoding="utf-8", newline="\n")
    _openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA",
             str(folder / f"{ca}.crt"), "-CAkey", str(folder / f"{ca}.key"),
             "-CAcreateserial", "-out", str(folder / f"{name}.crt"), "-days", days,
             "-extfile", str(extensions))
    return folder / f"{name}.crt"


def make_expired(folder: Path, name: str, ca: str) -> Path:
    """A certificate for 127.0.0.1/localhost from `ca` that expired in 2020: `openssl ca`,
    unlike `openssl x509`, takes the dates themselves."""
    _key_and_request(folder, name, f"/O=machikit test/CN={name}")
    (folder / "index.txt").write_text("", encoding="utf-8", newline="\n")
    (folder / f"{name}.cnf").write_text("\n".join([
        "[ca]", "default_ca = test", "[test]", f"database = {folder}/index.txt",
        f"new_certs_dir = {folder}", f"certificate = {folder}/{ca}.crt",
        f"private_key = {folder}/{ca}.key", "rand_serial = yes", "default_md = sha256",
        "policy = anything", "x509_extensions = server", "[anything]",
        "commonName = supplied", "[server]", SERVER_NAMES, "basicConstraints = CA:FALSE",
        "extendedKeyUsage = serverAuth", ""]), encoding="utf-8", newline="\n")
    _openssl("ca", "-batch", "-config", str(folder / f"{name}.cnf"), "-in",
             str(folder / f"{name}.csr"), "-out", str(folder / f"{name}.crt"), "-notext",
             "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")
    return folder / f"{name}.crt"


@dataclass
class Certificates:
    folder: Path
    town_ca: Path  # what a board and a Pi are given
    stranger_ca: Path  # a CA that signed nothing of the town's


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    town_ca, stranger_ca = make_ca(folder, "town-ca"), make_ca(folder, "stranger-ca")
    make_server(folder, "good", "town-ca", SERVER_NAMES)
    make_server(folder, "elsewhere", "town-ca", ELSEWHERE_NAMES)
    make_server(folder, "stranger", "stranger-ca", SERVER_NAMES)
    make_expired(folder, "expired", "town-ca")
    return Certificates(folder, town_ca, stranger_ca)


def tls_ready(port: int) -> bool:
    """The TLS listener answers a handshake (any certificate: only "is it up")."""
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as raw, context.wrap_socket(raw):
            return True
    except OSError:
        return False


class TlsMosquitto(SecondMosquitto):
    """SecondMosquitto plus one TLS listener per server certificate (`good`, `elsewhere`,
    `stranger`, `expired`), all with the same users and acl: ports[name] is where each answers."""

    SERVERS = ("good", "elsewhere", "stranger", "expired")

    def __init__(self, root: Path, certificates: Certificates) -> None:
        super().__init__(root)
        self.ports = {name: free_port() for name in self.SERVERS}
        for name in self.SERVERS:
            for part in ("crt", "key"):
                target = self.folder / f"{name}.{part}"
                target.write_bytes((certificates.folder / f"{name}.{part}").read_bytes())
                self._own(target, 0o600)

    def start(self) -> None:
        # The base class writes and starts its plain configuration; Mosquitto cannot add a
        # listener on reload, so it is restarted once with the TLS listeners appended.
        super().start()
        self._stop_daemon()
        with (self.folder / "mosquitto.conf").open("a", encoding="utf-8", newline="\n") as conf:
            for name, port in self.ports.items():
                conf.write(f"listener {port} 127.0.0.1\ncertfile {self.inner}/{name}.crt\n"
                           f"keyfile {self.inner}/{name}.key\n")
        self._start_daemon()
        assert wait_until(lambda: all(tls_ready(p) for p in self.ports.values()), 15), self.log()

    def _stop_daemon(self) -> None:
        from machikit.testbed.system import terminate

        terminate(self.pid(), timeout=10)
        (self.folder / "mosquitto.pid").unlink(missing_ok=True)

    def _start_daemon(self) -> None:
        from machikit.testbed.system import run_in_root

        result = run_in_root(self.root, ["mosquitto", "-c", f"{self.inner}/mosquitto.conf", "-d"])
        assert result.returncode == 0, result.stderr
        assert wait_until((self.folder / "mosquitto.pid").exists, 10), self.log()


@contextlib.contextmanager
def tls_mosquitto(write_files: Callable[[Path], None],
                  certificates: Certificates) -> Iterator[TlsMosquitto]:
    """A started TlsMosquitto whose passwd/acl `write_files(folder)` wrote; removed after."""
    mosquitto = TlsMosquitto(mosquitto_root(), certificates)
    try:
        write_files(mosquitto.folder)
        mosquitto.start()
        yield mosquitto
    finally:
        mosquitto.stop()


COLLECTOR = (COLLECTOR_USER, SERVICE[COLLECTOR_USER])


class TlsClient:
    """A paho MQTT 3.1.1 client over TLS that checks the broker with `ca` (a PEM file) and
    records what the broker answers: connack, the granted QoS of a subscription, messages."""

    def __init__(self, port: int, ca: Path, user: str | None, password: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.connack: int | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.retained: list[str] = []  # topics of the retained copies among them
        self.granted: list[int] = []
        self.disconnected = threading.Event()
        self._connected, self._subscribed = threading.Event(), threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                             client_id="tls-" + secrets.token_hex(4))
        self.c.tls_set(ca_certs=str(ca))  # CERT_REQUIRED and the host name checked
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = lambda *_: self.disconnected.set()
        self.c.connect(host, port, 10)  # the TLS handshake happens here: ssl errors raise
        self.c.loop_start()
        self._connected.wait(5)

    def _on_connect(self, c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        self.connack = int(rc.value)  # type: ignore[attr-defined]
        self._connected.set()

    def _on_message(self, c: mqtt.Client, u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, bytes(message.payload)))
        if message.retain:
            self.retained.append(message.topic)

    def _on_subscribe(self, c: mqtt.Client, u: object, m: int, codes: list, p: object) -> None:
        self.granted = [int(code.value) for code in codes]
        self._subscribed.set()

    def subscribe(self, *topics: str) -> list[int]:
        self._subscribed.clear()
        self.c.subscribe([(topic, 1) for topic in topics])
        assert self._subscribed.wait(5)
        return self.granted

    def publish(self, topic: str, payload: bytes = b"{}") -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def live(self) -> list[str]:
        """Topics of the messages published while we listened (not retained copies)."""
        live = self.topics()
        for topic in self.retained:
            live.remove(topic)
        return live

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@dataclass
class TlsBroker:
    """The module's TLS broker: a town with registered devices, and everything to reach it."""

    mosquitto: TlsMosquitto
    certificates: Certificates
    storage: Storage  # the registry (SQLite) the passwd/acl were written from
    town: str
    devices: dict[str, NewDevice]  # name -> user and password

    def port(self, server: str = "good") -> int:
        return self.mosquitto.ports[server]

    def collector(self) -> "TlsClient":
        """The collector's login, over TLS, reading the whole town."""
        client = TlsClient(self.port(), self.certificates.town_ca, *COLLECTOR)
        assert client.connack == 0
        client.subscribe(f"machikit/v1/{self.town}/#")
        return client


DEVICES = {"snow-01": "snow_gauge", "snow-02": "snow_gauge", "bus-01": "bus"}


@pytest.fixture(scope="module", name="tls_broker")
def tls_broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """`tls_broker`: one TLS Mosquitto per test module (starting it takes about a second).
    A test module imports tls_broker_fixture to use it."""
    folder = tmp_path_factory.mktemp("tls")
    certificates = make_certificates(folder / "certs")
    with migrated(f"sqlite:///{folder}/registry.db") as storage:
        town = unique_town()
        devices = {name: add_device(storage, town, name, kind) for name, kind in DEVICES.items()}

        def write(files: Path) -> None:
            write_broker_files(storage, files, SERVICE_HASHES)

        with tls_mosquitto(write, certificates) as mosquitto:
            yield TlsBroker(mosquitto, certificates, storage, town, devices)
