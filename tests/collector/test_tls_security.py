"""What the TLS port (8883 in production) refuses, on a real Mosquitto 2.0.21 with the
generated passwd/acl and a certificate from a test CA (tests/collector/tls_broker.py), and
the collector storing a device's message through TLS, end to end, in TimescaleDB.

Every refusal asserts its exact outcome (the CONNACK code, the SUBACK codes, a closed
connection, the certificate error) and, where a message could leak, that the collector's
own subscription never gets it. The module ends with one line: how many refusals were tried.
"""

import secrets
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.ingest import Collector
from collector.serve import Server
from collector.settings import Settings
from machikit import contract
from tests.collector.helpers import fresh_database, wait_until
from tests.collector.stacks import migrated
from tests.collector.tls_broker import (
    COLLECTOR,
    TlsBroker,
    TlsClient,
    tls_broker_fixture,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.services

NOT_AUTHORISED = 135  # paho's name for CONNACK return code 5 of MQTT 3.1.1 (bytes below)
REFUSED = 0x80  # SUBACK: this subscription is not allowed
NEGATIVES: list[str] = []  # every refusal tried here, for the summary line


def tried(case: str) -> None:
    NEGATIVES.append(case)


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # Tried, not passed: a failed assertion shows in pytest's own result.
    line = f"TLS security: {len(NEGATIVES)} negative cases tried"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:  # -p no:capture
        print(line)
        return
    with capture.global_and_fixture_disabled():  # shown even without -s
        print(f"\n{line}")


# --- raw MQTT 3.1.1 over TLS, for the packets paho would never send ---------------------------

def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def connect_packet(user: str, password: str) -> bytes:
    body = (_string(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
            + _string(f"raw-{secrets.token_hex(4)}".encode()) + _string(user.encode())
            + _string(password.encode()))
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes = b"{}", packet_id: int = 1) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _length(len(body)) + body  # QoS 1


def subscribe_packet(topic: bytes, packet_id: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _string(topic) + b"\x01"
    return b"\x82" + _length(len(body)) + body


class RawTls:
    """A TLS connection that checks the broker like a device does, sending bytes as given."""

    def __init__(self, broker: TlsBroker) -> None:
        context = ssl.create_default_context(cafile=str(broker.certificates.town_ca))
        raw = socket.create_connection(("127.0.0.1", broker.port()), 5)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.settimeout(5)

    def login(self, user: str, password: str) -> bytes:
        self.sock.sendall(connect_packet(user, password))
        return self.sock.recv(4)

    def closed_by_broker(self) -> bool:
        """True when the broker ends the connection (EOF or reset) without answering."""
        try:
            return self.sock.recv(64) == b""
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def device(broker: TlsBroker, name: str) -> TlsClient:
    login = broker.devices[name]
    client = TlsClient(broker.port(), broker.certificates.town_ca, login.user, login.password)
    assert client.connack == 0
    return client


def topic(broker: TlsBroker, name: str, channel: str) -> str:
    return contract.topic(broker.town, name, channel)


def still_serves(broker: TlsBroker) -> bool:
    """The broker still takes a device's message after the abuse."""
    collector = broker.collector()
    sender = device(broker, "bus-01")
    try:
        sender.publish(topic(broker, "bus-01", contract.POSITION))
        return wait_until(lambda: topic(broker, "bus-01", contract.POSITION)
                          in collector.live(), 10)
    finally:
        sender.close()
        collector.close()


# --- logging in -----------------------------------------------------------------------------

def test_logins_without_the_right_password_are_refused(tls_broker: TlsBroker) -> None:
    ca, port = tls_broker.certificates.town_ca, tls_broker.port()
    mine, other = tls_broker.devices["snow-01"], tls_broker.devices["snow-02"]
    cases = {
        "anonymous": (None, None),
        "wrong password": (mine.user, "guess"),
        "another device's password": (mine.user, other.password),
        "empty password": (mine.user, ""),
        "unknown user": ("nobody.snow-01", mine.password),
        "service user without password": ("machikit-dashboard", ""),
    }
    codes = {}
    for case, (user, password) in cases.items():
        tried(f"login: {case}")
        client = TlsClient(port, ca, user, password)
        codes[case] = client.connack
        client.close()
    assert codes == dict.fromkeys(cases, NOT_AUTHORISED)
    raw = RawTls(tls_broker)  # on the wire: CONNACK with return code 5, then the end
    try:
        assert raw.login(mine.user, "guess") == b"\x20\x02\x00\x05"
        assert raw.closed_by_broker()
    finally:
        raw.close()
    assert device(tls_broker, "snow-01").connack == 0  # the right one still gets in


# --- topics: writing and reading -------------------------------------------------------------

def test_a_device_writes_only_its_own_topics(tls_broker: TlsBroker) -> None:
    collector = tls_broker.collector()
    snow = device(tls_broker, "snow-01")
    try:
        forbidden = [topic(tls_broker, "snow-02", contract.READING),  # a neighbour's
                     topic(tls_broker, "bus-01", contract.POSITION),  # another kind's
                     topic(tls_broker, "snow-01", contract.COMMAND),  # its own, read-only
                     f"machikit/v1/other-town/snow-01/{contract.READING}",  # another town's
                     "machikit/sys/collector/x/stats"]  # the collector's
        for name in forbidden:
            tried(f"publish on {name}")
            snow.publish(name)
        own = topic(tls_broker, "snow-01", contract.READING)
        snow.publish(own)  # after the refused ones: once it is here, they would be too
        assert wait_until(lambda: own in collector.live(), 10)
        time.sleep(0.3)
        assert collector.live() == [own]
    finally:
        snow.close()
        collector.close()


def test_a_device_reads_nothing_of_other_devices(tls_broker: TlsBroker) -> None:
    town = tls_broker.town
    snow = device(tls_broker, "snow-01")
    neighbour, bus = device(tls_broker, "snow-02"), device(tls_broker, "bus-01")
    try:
        filters = ["machikit/v1/#", f"machikit/v1/{town}/+/pos", f"machikit/v1/{town}/#",
                   f"machikit/v1/{town}/snow-02/#", f"machikit/v1/{town}/snow-02/reading",
                   f"machikit/v1/{town}/bus-01/cmd", "#", "$SYS/#"]
        for name in filters:
            tried(f"subscribe to {name}")
        granted = snow.subscribe(*filters, topic(tls_broker, "snow-01", contract.COMMAND))
        # Mosquitto grants the filters and then delivers, message by message, only what the
        # acl lets this user read: its own cmd and status.
        assert granted == [1] * (len(filters) + 1), granted
        neighbour.publish(topic(tls_broker, "snow-02", contract.READING))
        neighbour.publish(topic(tls_broker, "snow-02", contract.STATUS))
        bus.publish(topic(tls_broker, "bus-01", contract.POSITION))
        own_status = topic(tls_broker, "snow-01", contract.STATUS)
        snow.publish(own_status)  # its own status: allowed to read, and it comes last
        assert wait_until(lambda: own_status in snow.live(), 10)
        time.sleep(0.3)
        assert set(snow.live()) == {own_status}, snow.live()
    finally:
        for client in (snow, neighbour, bus):
            client.close()


# --- broken packets ----------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "after_login", "packet"), [
    ("garbage instead of CONNECT", False, b"\xff\xff\xff\xff\xff\xff"),
    ("reserved packet type 15", True, b"\xf0\x00"),
    ("remaining length of five bytes", True, b"\x30\xff\xff\xff\xff\x7f"),
    ("PUBLISH shorter than its topic", True, b"\x32\x04\x00\x40ab"),
    ("SUBSCRIBE without a filter", True, b"\x82\x02\x00\x01"),
    ("second CONNECT", True, None),
])
def test_malformed_packets_close_the_connection(tls_broker: TlsBroker, case: str,
                                                after_login: bool, packet: bytes | None) -> None:
    tried(f"malformed: {case}")
    login = tls_broker.devices["snow-01"]
    raw = RawTls(tls_broker)
    try:
        if after_login:
            assert raw.login(login.user, login.password) == b"\x20\x02\x00\x00"  # CONNACK ok
        raw.sock.sendall(packet or connect_packet(login.user, login.password))
        assert raw.closed_by_broker(), case
    finally:
        raw.close()
    assert still_serves(tls_broker)


@pytest.mark.parametrize(("case", "packet"), [
    ("PUBLISH topic", publish_packet(b"machikit/v1/\xff\xfe/snow-01/reading")),
    ("PUBLISH topic, own device then bad byte", publish_packet(b"machikit/v1/x/snow-01/\xc3")),
    ("SUBSCRIBE filter", subscribe_packet(b"machikit/v1/\xed\xa0\x80/#")),  # a UTF-16 half
])
def test_invalid_utf8_is_refused(tls_broker: TlsBroker, case: str, packet: bytes) -> None:
    tried(f"invalid UTF-8: {case}")
    login = tls_broker.devices["snow-01"]
    collector = tls_broker.collector()
    raw = RawTls(tls_broker)
    try:
        assert raw.login(login.user, login.password) == b"\x20\x02\x00\x00"
        raw.sock.sendall(packet)
        assert raw.closed_by_broker(), case  # no PUBACK / SUBACK: the connection ends
        time.sleep(0.3)
        assert collector.live() == []
    finally:
        raw.close()
        collector.close()


# --- who answers on the TLS port -----------------------------------------------------------

@pytest.mark.parametrize(("server", "ca", "why"), [
    ("stranger", "town", "unable to get local issuer certificate"),  # another CA's broker
    ("good", "stranger", "unable to get local issuer certificate"),  # the wrong CA given
    ("elsewhere", "town", "IP address mismatch"),  # the town's CA, another host's certificate
    ("expired", "town", "certificate has expired"),
])
def test_the_client_refuses_a_broker_it_cannot_trust(tls_broker: TlsBroker, server: str,
                                                      ca: str, why: str) -> None:
    tried(f"certificate check: {server} server with the {ca} CA")
    certs = tls_broker.certificates
    with pytest.raises(ssl.SSLCertVerificationError, match=why):
        TlsClient(tls_broker.port(server), certs.town_ca if ca == "town" else certs.stranger_ca,
                  *COLLECTOR)


def test_plain_mqtt_to_the_tls_port_is_refused(tls_broker: TlsBroker) -> None:
    tried("plain MQTT to the TLS port")
    login = tls_broker.devices["snow-01"]
    with socket.create_connection(("127.0.0.1", tls_broker.port()), 5) as raw:
        raw.settimeout(5)
        raw.sendall(connect_packet(login.user, login.password))
        answer = b""
        try:
            while chunk := raw.recv(64):
                answer += chunk
        except ConnectionResetError:
            pass
    # No CONNACK (0x20): at most a TLS alert record (0x15), then the connection is closed.
    assert answer[:1] in (b"", b"\x15"), answer
    tried("paho without TLS to the TLS port")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set(login.user, login.password)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(int(rc.value))
    client.connect("127.0.0.1", tls_broker.port(), 10)
    client.loop_start()
    time.sleep(1.5)
    client.loop_stop()
    assert codes == [] and not client.is_connected()
    assert still_serves(tls_broker)


# --- the collector over TLS -------------------------------------------------------------------

def collector_settings(db: str, broker: TlsBroker, ca: Path) -> Settings:
    user, password = COLLECTOR
    return Settings(database_url=db, town=broker.town, stats_interval_s=1,
                    mqtt_url=f"mqtts://{user}:{password}@127.0.0.1:{broker.port()}",
                    mqtt_ca_file=ca, mqtt_client_id=f"collector-{secrets.token_hex(3)}",
                    web={"enabled": False})


def test_the_collector_stores_a_devices_message_through_tls(tls_broker: TlsBroker,
                                                           database_url: str) -> None:
    with fresh_database(database_url) as db:
        with migrated(db) as storage:
            storage.add_device(tls_broker.town, "snow-01", "snow_gauge")
        server = Server(collector_settings(db, tls_broker, tls_broker.certificates.town_ca))
        server.start()
        try:
            assert server.collector is not None and server.collector.subscribed.is_set()
            snow = device(tls_broker, "snow-01")
            t = time.time_ns() // 1_000_000 - 1000
            msg = contract.reading(7, t, "snow_depth", 42.5, "cm", "reference")
            snow.publish(topic(tls_broker, "snow-01", contract.READING), contract.encode(msg))
            snow.close()
            with migrated(db) as storage:
                assert wait_until(lambda: storage.counts()["readings"] == 1, 15)
                (row,) = storage.recent("readings", 5)
            assert (row["device"], row["seq"], row["value"]) == ("snow-01", 7, 42.5)
        finally:
            server.stop()


def test_the_collector_refuses_a_broker_from_another_ca(tls_broker: TlsBroker,
                                                       database_url: str) -> None:
    tried("collector with the wrong CA")
    with fresh_database(database_url) as db, migrated(db) as storage:
        settings = collector_settings(db, tls_broker, tls_broker.certificates.stranger_ca)
        collector = Collector(settings, storage, str(settings.mqtt_url))
        collector.start()  # it keeps retrying in the background, as with a broker that is down
        try:
            time.sleep(2)  # a trusted broker is subscribed to within a second
            assert not collector.subscribed.is_set() and not collector.client.is_connected()
        finally:
            collector.reporter.stop()
            collector.client.loop_stop()
