"""Passwords in Mosquitto's own $7$ format."""

import pytest

from machikit import credentials, testbed
from machikit.testbed.layout import current
from machikit.testbed.mosquitto import PASSWD


def test_hash_and_verify() -> None:
    stored = credentials.hash_password("hunter22")
    assert stored.startswith("$7$101$")
    assert credentials.verify_password("hunter22", stored)
    assert not credentials.verify_password("hunter23", stored)
    assert not credentials.verify_password("hunter22", "$6$not$ours")
    assert not credentials.verify_password("x", "garbage")


def test_new_passwords_differ_and_avoid_lookalikes() -> None:
    passwords = {credentials.new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert not any(ch in p for p in passwords for ch in "0O1lI")


def test_reads_what_mosquitto_passwd_wrote() -> None:
    """The test bed's password file was written by the real mosquitto_passwd."""
    env = testbed.load_env()
    if not env or not testbed.is_controllable():
        pytest.skip("needs the project's test bed (root): its password file is root-only")
    users = credentials.read_password_file(current().host(PASSWD))
    password = env["MACHIKIT_TEST_MQTT_URL"].split(":")[2].split("@")[0]
    assert credentials.verify_password(password, users["machikit-test"])
