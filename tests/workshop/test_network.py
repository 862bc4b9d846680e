"""Addresses a board can and cannot use (machikit/network.py), and the commands that refuse
the ones it cannot. Finding the laptop's address for real: tests/workshop/test_lan.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from machikit.network import is_loopback_name, lan_address, usable


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "LOCALHOST", "::1",
                                  "0.0.0.0"])
def test_loopback_names(host: str) -> None:
    assert is_loopback_name(host)


@pytest.mark.parametrize("host", ["192.168.10.2", "10.0.0.5", "mqtt.town.example.jp"])
def test_lan_names(host: str) -> None:
    assert not is_loopback_name(host)


def test_this_machine_has_a_usable_address() -> None:
    address = lan_address()
    assert address is not None and usable(address) and not is_loopback_name(address)


def test_machikit_flash_refuses_a_loopback_broker(tmp_path: Path) -> None:
    """A board given 127.0.0.1 or localhost would look for the broker on itself."""
    for host in ("127.0.0.1", "localhost"):
        done = subprocess.run(
            [sys.executable, "-m", "machikit", "flash", "--port", "COM3", "--app", "snow",
             "--town", "t", "--name", "n", "--user", "t.n", "--password", "p",
             "--wifi-ssid", "s", "--wifi-password", "w", "--broker-host", host],
            capture_output=True, text=True, encoding="utf-8", timeout=60, cwd=tmp_path)
        assert done.returncode == 2
        assert f"To a board, {host} means the board itself" in done.stdout
