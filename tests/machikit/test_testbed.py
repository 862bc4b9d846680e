"""The test bed itself (`machikit dev services up`): parsing and helpers always,
the running services when load_env() finds them. Plain sockets and the root's own
clients only, so these run without psycopg or paho."""

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from machikit import testbed
from machikit.cli import build_parser
from machikit.testbed import mosquitto, postgres
from machikit.testbed.layout import Layout
from machikit.testbed.micropython import elf_interpreter
from machikit.testbed.system import run_in_root

ENV = testbed.load_env()
needs_bed = pytest.mark.skipif(ENV is None, reason="no test bed: machikit dev services up")
needs_control = pytest.mark.skipif(not testbed.is_controllable(),
                                   reason="needs root and the test bed")


def env(key: str) -> str:
    assert ENV is not None
    return ENV[key]


def test_cli_parses_services_actions() -> None:
    for action in ("up", "down", "env", "status", "reset"):
        args = build_parser("dev").parse_args(["dev", "services", action])
        assert (args.dev_command, args.action, args.json) == ("services", action, False)
    assert build_parser("dev").parse_args(["dev", "services", "env", "--json"]).json


def test_elf_interpreter_of_this_python() -> None:
    loader = elf_interpreter(Path(os.path.realpath(sys.executable)))
    assert loader.startswith("/") and "ld" in loader and Path(loader).exists()


def test_configs_keep_the_promises(tmp_path: Path) -> None:
    pg = postgres.config_text(Layout(tmp_path), 55432)
    assert "shared_preload_libraries = 'timescaledb'" in pg and "fsync = on" in pg
    assert "listen_addresses = '127.0.0.1'" in pg
    mq = mosquitto.config_text(51883)
    for line in ("listener 51883 127.0.0.1", "allow_anonymous false", "persistence true",
                 "autosave_interval 1", "max_queued_messages 2000000"):
        assert line in mq


@needs_bed
def test_micropython_wrapper_runs_a_script_in_the_callers_directory(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(
        "import sys\n"
        "print(sys.implementation.name == 'micropython', sys.argv[1:])\n"
        "open('written.txt', 'w').write('here')\n"
    )
    result = subprocess.run([env("MACHIKIT_MICROPYTHON"), "probe.py", "a b", "c"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['a b', 'c']"
    assert (tmp_path / "written.txt").read_text() == "here"
    assert testbed.micropython_path() is not None


@needs_bed
def test_mqtt_needs_the_password() -> None:
    url = urlsplit(env("MACHIKIT_TEST_MQTT_URL"))
    assert url.port and url.username and url.password
    assert mosquitto.probe(url.port, url.username, url.password)
    assert not mosquitto.probe(url.port, url.username, "wrong")
    assert not mosquitto.probe(url.port, "", "")


@needs_bed
def test_postgres_asks_tcp_clients_for_scram() -> None:
    url = urlsplit(env("MACHIKIT_TEST_DATABASE_URL"))
    user, database = str(url.username), url.path[1:]
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    startup = struct.pack("!ii", 8 + len(params), 196608) + params  # protocol 3.0
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(startup)
        reply = sock.recv(1024)
    # 'R' AuthenticationSASL (10) offering SCRAM-SHA-256: no trust, no md5
    assert reply[:1] == b"R" and struct.unpack("!i", reply[5:9])[0] == 10
    assert b"SCRAM-SHA-256" in reply


def _in_root(*argv: str) -> str:
    result = run_in_root(Path(env("MACHIKIT_TESTBED_DIR")) / "root", list(argv), timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_control
def test_timescaledb_is_there_for_the_test_role() -> None:
    out = _in_root("psql", env("MACHIKIT_TEST_DATABASE_URL"), "-XAt", "-c",
                   "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
                   "-c", "SHOW timescaledb.license")
    version, licence = out.split()
    assert version.startswith("2.") and licence in ("apache", "timescale")


@needs_control
def test_mosquitto_restart_keeps_a_queued_qos1_message() -> None:
    url = urlsplit(env("MACHIKIT_TEST_MQTT_URL"))
    auth = ["-h", "127.0.0.1", "-p", str(url.port), "-u", str(url.username),
            "-P", str(url.password), "-q", "1", "-t", "machikit-test/testbed/persist"]
    session = [*auth, "-i", "machikit-test-testbed-persist", "-c"]
    _in_root("mosquitto_sub", *session, "-E")  # create the persistent session
    try:
        _in_root("mosquitto_pub", *auth, "-m", "kept")
        testbed.restart_mosquitto()
        assert _in_root("mosquitto_sub", *session, "-C", "1", "-W", "5").strip() == "kept"
    finally:  # a clean-session connect with the same id forgets the session
        _in_root("mosquitto_sub", *session[:-1], "-E")
