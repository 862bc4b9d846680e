"""The real test services ("test bed"): TimescaleDB, Mosquitto and MicroPython
from a cached Debian 13 root, scripted so a fresh machine needs nothing else.

CLI: `machikit dev services up|down|env|status|reset` (see cli.py); `machikit dev py313`
runs the client-side tests under the root's own Python 3.13 (client_python.py).
Tests: load_env(), is_controllable(), stop_/start_postgres(), stop_/start_/
restart_mosquitto(), micropython_path() (see api.py).
Layout: $MACHIKIT_TESTBED_DIR (default /var/lib/machikit-testbed) holds root/
(the Debian root; the servers' data lives inside it), env.json, secrets.json,
bin/micropython and build.log.
"""

from machikit.testbed.api import (
    is_controllable,
    load_env,
    micropython_path,
    restart_mosquitto,
    start_mosquitto,
    start_postgres,
    stop_mosquitto,
    stop_postgres,
)
from machikit.testbed.cli import add_arguments, run_dev
from machikit.testbed.layout import testbed_dir
from machikit.testbed.system import TestbedError

__all__ = [
    "TestbedError",
    "add_arguments",
    "is_controllable",
    "load_env",
    "micropython_path",
    "restart_mosquitto",
    "run_dev",
    "start_mosquitto",
    "start_postgres",
    "stop_mosquitto",
    "stop_postgres",
    "testbed_dir",
]
