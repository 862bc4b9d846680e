"""What the test-suite calls. Stopping and starting servers needs root (the
servers run chrooted); reading env.json and running MicroPython do not."""

import os
from collections.abc import Callable
from pathlib import Path

from machikit.testbed import mosquitto, postgres, rootfs
from machikit.testbed.layout import Layout, current, load_secrets, locked, read_env
from machikit.testbed.system import TestbedError
from machikit.texts import say


def load_env() -> dict[str, str] | None:
    """The URLs and paths `up` published, or None if there is no test bed."""
    return read_env(current())


def is_controllable() -> bool:
    """True if this process may stop/start the servers (root, test bed built, on the host)."""
    layout = current()
    return (os.geteuid() == 0 and not inside_root(layout) and rootfs.is_current(layout.root)
            and postgres.is_initialized(layout) and layout.env_file.exists())


def inside_root(layout: Layout) -> bool:
    """True in the client tests' run under the root's own Python (client_python.py): there
    the test bed's root is "/", so its Mosquitto binary can start a second broker, but the
    servers belong to the host: their lock and the host's test runs are outside."""
    return layout.root.resolve() == Path("/")


def _control(action: Callable[[Layout], None]) -> None:
    if os.geteuid() != 0:
        raise TestbedError(say("needs_root"))
    layout = current()
    if inside_root(layout):
        raise TestbedError(say("py313_no_control"))
    with locked(layout):
        action(layout)


def stop_postgres(mode: str = "fast") -> None:
    """Waits until the server is gone. mode: smart | fast | immediate (crash-like)."""
    _control(lambda layout: postgres.stop(layout, mode))


def start_postgres() -> None:
    """Waits until the server accepts connections."""
    _control(postgres.start)


def stop_mosquitto() -> None:
    """Graceful (SIGTERM): persistent sessions and queued messages are saved."""
    _control(mosquitto.stop)


def start_mosquitto() -> None:
    """Waits until an authenticated MQTT connect succeeds."""
    _control(lambda layout: mosquitto.start(layout, load_secrets(layout)["mqtt"]))


def restart_mosquitto() -> None:
    def restart(layout: Layout) -> None:
        mosquitto.stop(layout)
        mosquitto.start(layout, load_secrets(layout)["mqtt"])

    _control(restart)


def micropython_path() -> str | None:
    """$MACHIKIT_MICROPYTHON if set (your own build), else the test bed's wrapper."""
    for candidate in (os.environ.get("MACHIKIT_MICROPYTHON"),
                      (load_env() or {}).get("MACHIKIT_MICROPYTHON")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None
