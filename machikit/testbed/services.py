"""The `up`, `down`, `reset` and `status` steps, composed from the per-service modules.
Callers hold the lock (layout.locked) and have checked for root."""

import socket
import time
from urllib.parse import urlsplit

from machikit.testbed import browser, micropython, mosquitto, postgres, rootfs
from machikit.testbed.layout import (
    MQTT_USER,
    Layout,
    build_env,
    load_secrets,
    mqtt_port,
    pg_port,
    read_env,
    write_env,
)
from machikit.texts import say


def up(layout: Layout) -> dict[str, str]:
    """Idempotent: builds what is missing, starts what is down, leaves the rest."""
    if not rootfs.is_current(layout.root):
        down(layout)  # servers still running from an outdated root
        print(say("testbed_building", path=layout.root), flush=True)
        started = time.monotonic()
        rootfs.build(layout)
        print(say("testbed_built", seconds=time.monotonic() - started), flush=True)
    secret = load_secrets(layout)
    micropython.install(layout)
    _up_postgres(layout, secret, pg_port())
    _up_mosquitto(layout, secret, mqtt_port())
    env = build_env(layout, secret, pg_port(), mqtt_port())
    env["MACHIKIT_CHROMIUM"] = browser.install(layout)
    browser.install_host_tool(layout, "ufw")  # the workshop's firewall test (tests/workshop)
    browser.install_host_tool(layout, "openssl")  # the TLS tests make their own test CA
    write_env(layout, env)
    return env


def _up_postgres(layout: Layout, secret: dict[str, str], port: int) -> None:
    if not postgres.is_initialized(layout):
        postgres.initdb(layout)
    if postgres.write_config(layout, port):
        postgres.stop(layout)  # port/listen changes need a restart, not a reload
    postgres.start(layout)
    postgres.provision(layout, secret)
    postgres.check_tcp(layout, secret, port)


def _up_mosquitto(layout: Layout, secret: dict[str, str], port: int) -> None:
    changed = mosquitto.write_config(layout, port)
    if changed or not mosquitto.probe(port, MQTT_USER, secret["mqtt"]):
        mosquitto.stop(layout)  # new config, or running but refusing our password
    if mosquitto.pid(layout) is None:
        mosquitto.write_passwd(layout, secret["mqtt"])
    mosquitto.start(layout, secret["mqtt"])


def down(layout: Layout) -> None:
    if not layout.root.exists():
        return
    mosquitto.stop(layout)
    postgres.stop(layout, "fast")


def reset(layout: Layout) -> int:
    """Empty broker state and drop the tests' scratch databases; returns how many."""
    secret = load_secrets(layout)
    mosquitto.stop(layout)
    mosquitto.reset_persistence(layout)
    mosquitto.start(layout, secret["mqtt"])
    return postgres.drop_test_databases(layout)


def status(layout: Layout, as_root: bool) -> tuple[list[str], bool]:
    """Human-readable lines and whether everything runs."""
    env = read_env(layout)
    if not layout.root.exists() or env is None:
        return [say("testbed_absent", path=layout.base)], False
    db, mqtt = urlsplit(env["MACHIKIT_TEST_DATABASE_URL"]), urlsplit(env["MACHIKIT_TEST_MQTT_URL"])
    pg_pid = postgres.pid(layout)
    # As root, also require our own postmaster: the port could belong to another server.
    pg_ok = _port_open(db.port or 0) and (pg_pid is not None or not as_root)
    mq_ok = mosquitto.probe(mqtt.port or 0, mqtt.username or "", mqtt.password or "")
    pg_detail = f"127.0.0.1:{db.port}"
    if as_root and pg_ok:
        pg_detail += ", TimescaleDB {} ({})".format(*postgres.timescaledb_info(layout))
    lines = [
        _line("PostgreSQL 17", pg_ok, pg_pid, pg_detail),
        _line("Mosquitto", mq_ok, mosquitto.pid(layout), f"127.0.0.1:{mqtt.port}"),
        say("testbed_micropython", path=env["MACHIKIT_MICROPYTHON"]),
    ]
    return lines, pg_ok and mq_ok


def _line(service: str, ok: bool, pid: int | None, detail: str) -> str:
    if not ok:
        return say("testbed_not_running", service=service)
    if pid:  # unknown to non-root callers: the PostgreSQL data directory is private
        detail = f"pid {pid}, {detail}"
    return say("testbed_running", service=service, detail=detail)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False

