"""Mosquitto 2.0.21 from the root, on 127.0.0.1 only, with a password and persistence.

Started as root inside the chroot (`mosquitto -d`); it drops to the root's
`mosquitto` user by itself. Stopped with SIGTERM, which saves the persistence
DB, so persistent sessions and their queued QoS 1 messages survive restarts.
"""

import socket
import struct

from machikit.testbed.layout import MQTT_USER, Layout
from machikit.testbed.system import (
    TestbedError,
    chown,
    processes_in,
    run_in_root,
    runs_in,
    tail,
    terminate,
    wait_until,
)

HOME = "/srv/machikit/mosquitto"
CONF = f"{HOME}/mosquitto.conf"
PASSWD = f"{HOME}/passwd"
DATA = f"{HOME}/data/"
DB = f"{DATA}mosquitto.db"
LOG = f"{HOME}/mosquitto.log"
PID = f"{HOME}/mosquitto.pid"


def log_path(layout: Layout) -> str:
    return str(layout.host(LOG))


def config_text(port: int) -> str:
    return "\n".join([
        "# Written by `machikit dev services up`; edits are overwritten.",
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {PASSWD}",
        "persistence true",
        f"persistence_location {DATA}",
        "autosave_interval 1",
        # 3.1.1 clients that ack after commit need a wide window (default 20 crawls).
        "max_inflight_messages 1000",
        # Room for a long collector outage; tests must still clean up their sessions.
        "max_queued_messages 2000000",
        "persistent_client_expiration 1h",
        f"log_dest file {LOG}",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        f"pid_file {PID}",
        "",
    ])


def write_config(layout: Layout, port: int) -> bool:
    """True if the config changed (a running broker must restart to pick it up)."""
    for inner in (HOME, DATA):
        layout.host(inner).mkdir(parents=True, exist_ok=True)
        chown(layout.root, layout.host(inner), "mosquitto", 0o755)
    path = layout.host(CONF)
    text = config_text(port)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8", newline="\n")
    path.chmod(0o644)
    return True


def write_passwd(layout: Layout, password: str) -> None:
    result = run_in_root(layout.root, ["mosquitto_passwd", "-c", "-b", PASSWD, MQTT_USER,
                                       password])
    if result.returncode:
        raise TestbedError("mosquitto_passwd", result.stdout + result.stderr)
    # Mosquitto reads it after dropping to its user and warns if others can read it.
    chown(layout.root, layout.host(PASSWD), "mosquitto", 0o600)


def pid(layout: Layout) -> int | None:
    try:
        number = int(layout.host(PID).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return number if runs_in(number, layout.root, "mosquitto") else None


def configured_port(layout: Layout) -> int | None:
    for line in layout.host(CONF).read_text(encoding="utf-8").splitlines():
        if line.startswith("listener "):
            return int(line.split()[1])
    return None


def start(layout: Layout, password: str) -> None:
    """Returns once an authenticated CONNECT gets CONNACK 0."""
    if pid(layout) is None:
        _spawn(layout)
    port = configured_port(layout) or 0
    if not wait_until(lambda: probe(port, MQTT_USER, password) or _died(layout), 15):
        raise TestbedError("mosquitto start (timeout)", tail(layout.host(LOG)))
    if pid(layout) is None:
        raise TestbedError("mosquitto start", tail(layout.host(LOG)))


def _spawn(layout: Layout) -> None:
    layout.host(PID).unlink(missing_ok=True)  # a stale pid must not count as "up"
    result = run_in_root(layout.root, ["mosquitto", "-c", CONF, "-d"], timeout=30)
    if result.returncode:  # config errors are reported before it daemonises
        raise TestbedError("mosquitto start", result.stderr + tail(layout.host(LOG)))


def _died(layout: Layout) -> bool:
    # `-d` returns before the listener is bound, and on a port clash the daemon exits
    # and removes its pid file: look for the process itself, not the pid file.
    return not processes_in(layout.root, "mosquitto")


def stop(layout: Layout) -> None:
    number = pid(layout)
    if number is not None:
        # Generous timeout: saving a big backlog to mosquitto.db takes a while.
        terminate(number, timeout=60)


def reset_persistence(layout: Layout) -> None:
    """Orphaned persistent sessions from earlier runs keep queueing; start empty."""
    layout.host(DB).unlink(missing_ok=True)
    layout.host(DB + ".new").unlink(missing_ok=True)


def probe(port: int, user: str, password: str, timeout: float = 1.0) -> bool:
    """Minimal MQTT 3.1.1 CONNECT with credentials; True on CONNACK 'accepted'."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(_connect_packet(user, password))
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return reply == b"\x20\x02\x00\x00"


def _field(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _connect_packet(user: str, password: str) -> bytes:
    # protocol "MQTT" level 4, flags: user name + password + clean session, keepalive 10 s
    body = (_field("MQTT") + b"\x04\xc2" + struct.pack("!H", 10)
            + _field("machikit-testbed-probe") + _field(user) + _field(password))
    return b"\x10" + _remaining_length(len(body)) + body


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)
