"""Where the test bed lives on disk, its passwords, and the env.json it publishes.

Everything the servers write lives inside the Debian root (they run chrooted);
everything the caller needs (env.json, secrets, the MicroPython wrapper) lives
next to it, so a rebuilt root keeps the same passwords.
"""

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = "/var/lib/machikit-testbed"
DEFAULT_PG_PORT = 55432
DEFAULT_MQTT_PORT = 51883
MQTT_USER = "machikit-test"
PG_USER = "machikit"
PG_DATABASE = "machikit_test"
SECRET_KEYS = ("pg_machikit", "pg_postgres", "mqtt")


def testbed_dir() -> Path:
    return Path(os.environ.get("MACHIKIT_TESTBED_DIR") or DEFAULT_DIR)


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def pg_port() -> int:
    return _port("MACHIKIT_TESTBED_PG_PORT", DEFAULT_PG_PORT)


def mqtt_port() -> int:
    return _port("MACHIKIT_TESTBED_MQTT_PORT", DEFAULT_MQTT_PORT)


@dataclass(frozen=True)
class Layout:
    base: Path

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def build(self) -> Path:
        # Built here and renamed to `root` at the end: a half-built root never looks done.
        return self.base / "root.build"

    @property
    def env_file(self) -> Path:
        return self.base / "env.json"

    @property
    def secrets_file(self) -> Path:
        return self.base / "secrets.json"

    @property
    def build_log(self) -> Path:
        return self.base / "build.log"

    @property
    def micropython(self) -> Path:
        return self.base / "bin" / "micropython"

    def host(self, inner: str) -> Path:
        """Host path of a path seen from inside the root."""
        return self.root / inner.lstrip("/")


def current() -> Layout:
    return Layout(testbed_dir())


@contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Serialise up/down/reset and the test API (pytest-xdist workers, two shells)."""
    if not layout.base.exists():
        layout.base.mkdir(parents=True)
        # 0755 whatever the umask: non-root test runs read env.json and run bin/micropython
        layout.base.chmod(0o755)
    with open(layout.base / ".lock", "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load_secrets(layout: Layout) -> dict[str, str]:
    """Generated once and reused, so URLs stay valid across `up`s and rebuilds."""
    path = layout.secrets_file
    stored: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    missing = [key for key in SECRET_KEYS if not stored.get(key)]
    if missing:
        # token_hex: safe inside URLs, SQL literals and config files without quoting.
        stored.update({key: secrets.token_hex(16) for key in missing})
        _write_private(path, json.dumps(stored, indent=2) + "\n", 0o600)
    return stored


def build_env(layout: Layout, secret: dict[str, str], pg: int, mqtt: int) -> dict[str, str]:
    host = "127.0.0.1"
    return {
        "MACHIKIT_TEST_DATABASE_URL":
            f"postgresql://{PG_USER}:{secret['pg_machikit']}@{host}:{pg}/{PG_DATABASE}",
        "MACHIKIT_TEST_ADMIN_DATABASE_URL":
            f"postgresql://postgres:{secret['pg_postgres']}@{host}:{pg}/postgres",
        "MACHIKIT_TEST_MQTT_URL": f"mqtt://{MQTT_USER}:{secret['mqtt']}@{host}:{mqtt}",
        "MACHIKIT_MICROPYTHON": str(layout.micropython),
        "MACHIKIT_TESTBED_DIR": str(layout.base),
    }


def write_env(layout: Layout, env: dict[str, str]) -> None:
    # 0644 on purpose: tests run as ordinary users read it (test-only passwords).
    _write_private(layout.env_file, json.dumps(env, indent=2) + "\n", 0o644)


def read_env(layout: Layout) -> dict[str, str] | None:
    try:
        data = json.loads(layout.env_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, PermissionError, json.JSONDecodeError):
        return None
    return {str(key): str(value) for key, value in data.items()}


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write atomically with the final mode from the start (no window where it is wider)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.chmod(tmp, mode)  # O_CREAT honours the umask; make the mode exact
    os.replace(tmp, path)
