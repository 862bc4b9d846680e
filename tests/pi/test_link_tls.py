"""pi/link.py over TLS against a real Mosquitto with TLS listeners (tests/collector/
tls_broker.py): a Pi job checks the broker's certificate with `[broker] cafile` (or the
system's CAs) and the host name, and never hands a message to a broker it cannot trust.
"""

import time
from pathlib import Path

import pytest

from machikit import contract
from pi.link import Link
from tests.collector.helpers import wait_until
from tests.collector.tls_broker import TlsBroker, tls_broker_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.services

DEVICE = "bus-01"
PAYLOAD = contract.encode(contract.position(0, 1795650000000, 42.31, 140.97))


def pi_link(broker: TlsBroker, server: str, cafile: Path | None,
            host: str = "127.0.0.1") -> Link:
    login = broker.devices[DEVICE]
    return Link(broker.town, DEVICE, host, broker.port(server), login.user, login.password,
                tls=True, cafile=None if cafile is None else str(cafile))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_towns_ca_file_lets_the_job_send(tls_broker: TlsBroker, host: str) -> None:
    collector = tls_broker.collector()
    link = pi_link(tls_broker, "good", tls_broker.certificates.town_ca, host)
    link.start()
    try:
        assert wait_until(lambda: link.connected, 10)
        assert link.send(contract.POSITION, PAYLOAD) is True
        sent = contract.topic(tls_broker.town, DEVICE, contract.POSITION)
        assert wait_until(lambda: sent in collector.live(), 10)
    finally:
        link.close()
        collector.close()


@pytest.mark.parametrize(("server", "ca"), [
    ("stranger", "town"),  # another CA's broker on the right address
    ("good", "stranger"),  # the job was given the wrong CA
    ("good", "system"),  # a private CA is not in the system's store
    ("elsewhere", "town"),  # the town's CA, but a certificate for another host
    ("expired", "town"),
])
def test_a_broker_that_fails_the_check_gets_nothing(tls_broker: TlsBroker, server: str,
                                                   ca: str) -> None:
    certs = tls_broker.certificates
    cafile = {"town": certs.town_ca, "stranger": certs.stranger_ca, "system": None}[ca]
    collector = tls_broker.collector()
    link = pi_link(tls_broker, server, cafile)
    link.start()
    try:
        time.sleep(2)  # paho tries (and retries) the handshake meanwhile
        assert not link.connected and link.connects == 0
        assert link.send(contract.POSITION, PAYLOAD) is False  # kept in the outbox
        time.sleep(0.3)
        assert collector.live() == []
    finally:
        link.close()
        collector.close()
