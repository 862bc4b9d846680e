"""The firmware checks its broker's certificate: firmware/lib/mk_mqtt.py with the CA file a
board gets from `machikit flash --ca` (read by mk_ca.read_ca, as mk_config does for main.py), on the
real MicroPython unix port (its mbedTLS), against a real Mosquitto with TLS listeners
(tests/collector/tls_broker.py). The board must refuse a broker whose certificate is from
another CA, for another host name, or expired, and never send it a message.
"""

import time
from pathlib import Path

import pytest

from machikit.flash.certs import board_ca
from tests.collector.helpers import wait_until
from tests.collector.tls_broker import TlsBroker, tls_broker_fixture  # noqa: F401 (fixture)
from tests.firmware.process import run_runner

pytestmark = pytest.mark.services

RUNNER = Path(__file__).with_name("tls_runner.py")
HEAP = "128k"
DEVICE = "snow-01"


@pytest.fixture(scope="module")
def ca_files(tls_broker: TlsBroker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The board's ca.der for: the town's CA, a stranger's CA, and both (a CA change)."""
    folder = tmp_path_factory.mktemp("board-ca")
    certs = tls_broker.certificates
    files = {"town": board_ca(certs.town_ca), "stranger": board_ca(certs.stranger_ca)}
    files["both"] = files["stranger"] + files["town"]
    for name, der in files.items():
        (folder / f"{name}.der").write_bytes(der)
    return {name: folder / f"{name}.der" for name in files}


def board(micropython: str, lib: Path, broker: TlsBroker, server: str, ca: Path | None,
          host: str = "127.0.0.1") -> dict[str, dict]:
    """One board run: its lines by op (ca, connect, sent)."""
    device = broker.devices[DEVICE]
    lines = run_runner(micropython, RUNNER, lib,
                       (host, broker.port(server), device.user, device.password, broker.town,
                        DEVICE, ca or "-", time.time_ns() // 1_000_000 - 1000), HEAP)
    return {line["op"]: line for line in lines}


@pytest.mark.parametrize(("ca", "host"), [("town", "127.0.0.1"), ("town", "localhost"),
                                          ("both", "127.0.0.1")])
def test_the_towns_broker_is_trusted_and_gets_the_reading(
    micropython: str, board_mpy: Path, tls_broker: TlsBroker, ca_files: dict[str, Path],
    ca: str, host: str,
) -> None:
    collector = tls_broker.collector()
    try:
        got = board(micropython, board_mpy, tls_broker, "good", ca_files[ca], host)
        assert got["ca"] == {"op": "ca", "count": 2 if ca == "both" else 1, "problem": None}
        assert got["connect"]["ok"] is True, got
        assert got["sent"]["ok"] is True, got
        reading = f"machikit/v1/{tls_broker.town}/{DEVICE}/reading"
        assert wait_until(lambda: reading in collector.live(), 10)
    finally:
        collector.close()


@pytest.mark.parametrize(("server", "ca", "why"), [
    ("stranger", "town", "not correctly signed by the trusted CA"),  # another CA's broker
    ("good", "stranger", "not correctly signed by the trusted CA"),  # the board's CA is not
    ("elsewhere", "town", "Common Name (CN) does not match"),  # the town's CA, another host
    ("expired", "town", "validity has expired"),
])
def test_a_broker_that_fails_the_check_is_refused(
    micropython: str, board_mpy: Path, tls_broker: TlsBroker, ca_files: dict[str, Path],
    server: str, ca: str, why: str,
) -> None:
    collector = tls_broker.collector()
    try:
        got = board(micropython, board_mpy, tls_broker, server, ca_files[ca])
        assert got["connect"]["ok"] is False and got["connect"]["attempts"] == 1
        assert why in got["connect"]["error"], got
        assert "sent" not in got  # nothing is sent: the handshake failed before CONNECT
        time.sleep(0.3)
        assert collector.live() == []  # the collector's own listener saw nothing either
    finally:
        collector.close()


def test_without_a_ca_the_board_does_not_check(
    micropython: str, board_mpy: Path, tls_broker: TlsBroker,
) -> None:
    """Why `machikit flash` warns without --ca: such a board talks to any broker."""
    got = board(micropython, board_mpy, tls_broker, "stranger", None)
    assert got["connect"]["ok"] is True and got["sent"]["ok"] is True


def test_a_broken_ca_file_is_a_config_problem(
    micropython: str, board_mpy: Path, tls_broker: TlsBroker, tmp_path: Path,
) -> None:
    """A torn copy or a PEM file where DER belongs: the board says so, it does not crash."""
    pem = tmp_path / "ca.der"
    pem.write_bytes(tls_broker.certificates.town_ca.read_bytes())  # PEM, not DER
    torn = tmp_path / "torn.der"
    torn.write_bytes(board_ca(tls_broker.certificates.town_ca)[:-10])
    for path in (pem, torn, tmp_path / "missing.der"):
        got = board(micropython, board_mpy, tls_broker, "good", path)
        assert got["ca"]["count"] is None and str(path) in got["ca"]["problem"], got
        assert " / config: " in got["ca"]["problem"]

