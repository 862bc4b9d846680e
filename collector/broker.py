"""The embedded MQTT broker (amqtt) for `machikit serve` without configuration.

It runs inside the machikit process, so a workshop laptop or a Raspberry Pi
needs no Mosquitto, no root and no Docker. Nobody connects anonymously: users
and their password hashes live in data_dir/broker/passwd (Mosquitto's format).
It listens on 127.0.0.1 by default; LAN access comes with device credentials.

Limits compared with Mosquitto (docs/design.md): MQTT 3.1.1 only, sessions
kept in memory (a restart forgets them), and amqtt gives up on a QoS 1
delivery whose PUBACK takes more than 5 s.
"""

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from machikit import credentials
from machikit.texts import say

log = logging.getLogger("machikit.broker")
COLLECTOR_USER = "machikit-collector"


class PasswordFileAuth(BaseAuthPlugin):
    """Lets in only users of the password file, with the right password."""

    @dataclass
    class Config:
        password_file: str = ""

    async def authenticate(self, *, session: Session) -> bool | None:
        users = credentials.read_password_file(Path(self.config.password_file))
        stored = users.get(session.username or "")
        ok = bool(stored and credentials.verify_password(session.password or "", stored))
        if not ok:
            log.warning("refused MQTT login for user %r from client %r",
                        session.username, session.client_id)
        return ok


def broker_dir(data_dir: Path) -> Path:
    return data_dir / "broker"


def has_local_user(data_dir: Path, user: str) -> bool:
    return (broker_dir(data_dir) / f"{user}.secret").exists()


def local_user(data_dir: Path, user: str) -> str:
    """Password of a user the machikit process itself uses (collector, demo devices).

    Created on first use; the plain password stays in data_dir (owner-only) so the
    same process can log in again after a restart."""
    folder = broker_dir(data_dir)
    secret = folder / f"{user}.secret"
    if secret.exists():
        return secret.read_text("utf-8").strip()
    password = credentials.new_password()
    users = credentials.read_password_file(folder / "passwd")
    users[user] = credentials.hash_password(password)
    credentials.write_password_file(folder / "passwd", users)
    secret.touch(mode=0o600)
    secret.write_text(password, "utf-8")
    return password


def local_url(settings, user: str = COLLECTOR_USER) -> str:
    password = local_user(settings.data_dir, user)
    host = settings.embedded_mqtt_host
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"mqtt://{user}:{password}@{connect_to}:{settings.embedded_mqtt_port}"


class EmbeddedBroker:
    """amqtt in its own thread with its own event loop."""

    def __init__(self, host: str, port: int, data_dir: Path) -> None:
        self.host, self.port = host, port
        self.password_file = broker_dir(data_dir) / "passwd"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker",
                                        daemon=True)
        self._broker: Broker | None = None

    def _config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                f"{__name__}.PasswordFileAuth": {"password_file": str(self.password_file)},
            },
        }

    async def _start(self) -> None:
        self._broker = Broker(self._config(), loop=self._loop)
        await self._broker.start()

    def start(self) -> None:
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=15)
        except Exception as err:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if "address already in use" in str(err).lower() or "errno 98" in str(err).lower():
                raise SystemExit(say("port_in_use", port=self.port)) from err
            raise

    def stop(self) -> None:
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                future.result(timeout=10)
            except Exception:  # shutting down anyway
                log.debug("broker shutdown", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
