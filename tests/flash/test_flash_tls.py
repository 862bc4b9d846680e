"""`machikit flash --ca`: the CA certificate is made ready for a board (machikit/flash/
certs.py) and copied with the config; the flashed board, booted by the real MicroPython, comes
online on a real Mosquitto over TLS only when the broker's certificate is from that CA
(tests/collector/tls_broker.py)."""

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from machikit.flash.bundle import device_config
from machikit.flash.certs import CertificateError, board_ca
from machikit.flash.copy import flash_board
from machikit.flash.watch import wait_online
from tests.collector.tls_broker import (
    SERVER_NAMES,
    TlsBroker,
    make_ca,
    make_server,
    tls_broker_fixture,  # noqa: F401 (fixture)
)
from tests.firmware.process import mpy_cross
from tests.flash.board_sim import BoardSim
from tests.flash.test_flash import FIRMWARE_FAKES, boot

NAME = "snow-01"


# --- the CA file, as a town hands it over ---------------------------------------------------

@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cas")
    make_ca(folder, "one")
    make_ca(folder, "two")
    make_server(folder, "server", "one", SERVER_NAMES)
    return folder


def der_of(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text(encoding="ascii"))


def test_pem_becomes_der_and_a_bundle_stays_a_bundle(cas: Path, tmp_path: Path) -> None:
    one, two = der_of(cas / "one.crt"), der_of(cas / "two.crt")
    assert board_ca(cas / "one.crt") == one
    bundle = tmp_path / "bundle.pem"
    bundle.write_text((cas / "one.crt").read_text(encoding="ascii") + "\n"
                      + (cas / "two.crt").read_text(encoding="ascii"), encoding="ascii")
    assert board_ca(bundle) == one + two  # both trusted while a town changes its CA
    der = tmp_path / "one.der"
    der.write_bytes(one)
    assert board_ca(der) == one  # DER given: kept as it is


@pytest.mark.parametrize(("file", "why"), [
    ("one.key", "no certificate"),  # the CA's key picked by mistake
    ("server.crt", "not a CA certificate"),  # the broker's own certificate
    ("missing.pem", "No such file"),
    ("torn.der", "not a certificate"),
])
def test_files_a_board_cannot_use_are_refused_at_flash_time(cas: Path, file: str,
                                                           why: str) -> None:
    (cas / "torn.der").write_bytes(der_of(cas / "one.crt")[:-20])
    with pytest.raises(CertificateError, match=why):
        board_ca(cas / file)


def test_the_command_says_what_is_wrong_with_the_ca_and_warns_without_one(
    cas: Path, tmp_path: Path,
) -> None:
    args = ["--port", str(tmp_path / "no-such-port"), "--app", "snow", "--town", "t",
            "--name", "n", "--user", "t.n", "--password", "p", "--wifi-ssid", "s",
            "--wifi-password", "w", "--broker-host", "192.0.2.1"]

    def flash(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "machikit", "flash", *args, *extra],
                              capture_output=True, text=True, encoding="utf-8", timeout=120,
                              cwd=tmp_path)

    bad = flash("--ca", str(cas / "server.crt"))
    assert bad.returncode == 2 and "--ca の証明書はボードで使えません" in bad.stdout
    assert "not a CA certificate" in bad.stdout
    none = flash()  # allowed, with a note, then the missing port as before
    assert none.returncode == 1 and "--ca がないので" in none.stdout and "no --ca" in none.stdout
    good = flash("--ca", str(cas / "one.crt"))
    assert good.returncode == 1 and "--ca" not in good.stdout  # no note: the port is next
    plain = flash("--no-tls")
    assert plain.returncode == 1 and "--ca" not in plain.stdout


# --- a flashed board over TLS ----------------------------------------------------------------

@pytest.fixture
def board(micropython: str, tmp_path: Path) -> Iterator[BoardSim]:
    with BoardSim(micropython, tmp_path / "flash") as sim:
        yield sim


def flashed(board: BoardSim, broker: TlsBroker, server: str, ca_der: bytes) -> dict:
    login = broker.devices[NAME]
    config = device_config(broker.town, NAME, login.user, login.password, "test-ap", "x",
                           "127.0.0.1", broker.port(server), tls=True)
    flash_board(board.path, "snow", config, ca_der=ca_der)
    return config


def powered_on(micropython: str, flash: Path, tmp_path: Path) -> "subprocess.Popen[str]":
    fakes = tmp_path / "fakes"
    fakes.mkdir(exist_ok=True)
    for fake in FIRMWARE_FAKES.glob("*.py"):
        mpy_cross(fake, fakes / f"{fake.stem}.mpy")
    return boot(micropython, flash, fakes)


@pytest.mark.services
@pytest.mark.parametrize(("server", "online"), [("good", True), ("stranger", False)])
def test_a_flashed_board_comes_online_only_on_the_towns_broker(
    micropython: str, board: BoardSim, tls_broker: TlsBroker, tmp_path: Path, server: str,
    online: bool,
) -> None:
    ca_der = board_ca(tls_broker.certificates.town_ca)
    flashed(board, tls_broker, server, ca_der)
    flash = tmp_path / "flash"
    assert (flash / "ca.der").read_bytes() == ca_der
    broker = json.loads((flash / "config.json").read_text(encoding="utf-8"))["broker"]
    assert broker == {"host": "127.0.0.1", "port": tls_broker.port(server), "tls": True,
                      "ca": "ca.der"}
    login = tls_broker.devices[NAME]
    watch = f"mqtts://{login.user}:{login.password}@127.0.0.1:{tls_broker.port()}"
    running = powered_on(micropython, flash, tmp_path)
    try:
        assert wait_online(watch, tls_broker.town, NAME, 15 if online else 6,
                           ca_der=ca_der) is online
    finally:
        running.kill()
        out, _ = running.communicate(timeout=10)
    assert "Traceback" not in out, out
    assert "NOT checked" not in out and "not configured" not in out, out  # it has its CA

