"""The embedded MQTT broker (amqtt) for `machikit serve` without configuration.

It runs inside the machikit process, so a workshop laptop or a Raspberry Pi
needs no Mosquitto, no root and no Docker. Nobody connects anonymously: users
and their password hashes live in data_dir/broker/passwd (Mosquitto's format).
It listens on 127.0.0.1 by default; LAN access comes with device credentials.

Checked before amqtt sees them (broker_checks.py): passwords, client ids that belong to
another login, retained messages past the topic rules, messages over 256 KiB.
Limits compared with Mosquitto (docs/design.md): MQTT 3.1.1 only, sessions
kept in memory (a stop hands what it holds to the collector first; a crash
forgets it), and amqtt gives up on a QoS 1 delivery whose PUBACK takes more than 5 s.
"""

import asyncio
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from collector.broker_checks import COLLECTOR_USER, CheckedBroker
from machikit import credentials
from machikit.private import FILE_MODE, private_folder, tighten, write_private_text
from machikit.texts import say

log = logging.getLogger("machikit.broker")
__all__ = ["COLLECTOR_USER", "EmbeddedBroker", "broker_dir", "local_url"]


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


class AclFileTopics(BaseTopicPlugin):
    """Mosquitto's topic rules from the acl file `machikit device broker-files` writes.

    Without an acl file every logged-in user may use every topic: a fresh `serve`, where
    only the collector has a login. The demo, `workshop prepare` and `workshop serve`
    write one. With one, a user not named in it may do nothing, as in Mosquitto."""

    @dataclass
    class Config:
        acl_file: str = ""

    _cache: tuple[int, dict[str, list[tuple[str, str]]]] | None = None

    def _rules(self) -> dict[str, list[tuple[str, str]]] | None:
        try:
            changed = Path(self.config.acl_file).stat().st_mtime_ns
        except OSError:
            return None
        if self._cache is None or self._cache[0] != changed:  # re-read when rewritten
            self._cache = (changed, read_acl(Path(self.config.acl_file)))
        return self._cache[1]

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        rules = self._rules()
        if rules is None:
            return True
        need = "write" if action == Action.PUBLISH else "read"
        user = (session.username if session else None) or ""
        allowed = any(access in (need, "readwrite") and topic_allowed(pattern, topic or "")
                      for access, pattern in rules.get(user, []))
        if not allowed:
            log.info("refused %s of %r for user %r", need, topic, user)
        return allowed


def read_acl(path: Path) -> dict[str, list[tuple[str, str]]]:
    """The `user X` / `topic read|write|readwrite T` subset of Mosquitto's acl file."""
    rules: dict[str, list[tuple[str, str]]] = {}
    user = ""  # rules before any `user` line are for anonymous clients, never let in here
    for line in path.read_text("utf-8").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "user":
            user = words[1]
        elif len(words) == 3 and words[0] == "topic":
            rules.setdefault(user, []).append((words[1], words[2]))
    return rules


def topic_allowed(pattern: str, topic: str) -> bool:
    """Whether pattern covers topic; topic may be a subscription filter, whose '+' and
    '#' are then allowed only where the pattern is at least as wide."""
    wanted, allowed = topic.split("/"), pattern.split("/")
    for index, level in enumerate(allowed):
        if level == "#":
            return True
        if index >= len(wanted) or wanted[index] == "#":
            return False
        if level != "+" and level != wanted[index]:
            return False
    return len(wanted) == len(allowed)


def broker_dir(data_dir: Path) -> Path:
    return data_dir / "broker"


def has_local_user(data_dir: Path, user: str) -> bool:
    return (broker_dir(data_dir) / f"{user}.secret").exists()


def local_user(data_dir: Path, user: str) -> str:
    """Password of a user the machikit process itself uses (collector, demo devices).

    Created on first use; the plain password stays in data_dir (owner-only) so the
    same process can log in again after a restart."""
    private_folder(data_dir)  # it holds the database with the password hashes too
    folder = private_folder(broker_dir(data_dir))
    for existing in (folder / "passwd", folder / "acl"):
        tighten(existing, FILE_MODE)
    secret = folder / f"{user}.secret"
    if secret.exists():
        tighten(secret, FILE_MODE)
        return secret.read_text("utf-8").strip()
    password = credentials.new_password()
    users = credentials.read_password_file(folder / "passwd")
    users[user] = credentials.hash_password(password)
    credentials.write_password_file(folder / "passwd", users)
    write_private_text(secret, password)
    return password


def local_url(settings, user: str = COLLECTOR_USER) -> str:
    password = local_user(settings.data_dir, user)
    host = settings.embedded_mqtt_host
    connect_to = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"mqtt://{user}:{password}@{connect_to}:{settings.embedded_mqtt_port}"


class EmbeddedBroker:
    """amqtt in its own thread with its own event loop.

    wait_for_collector: others may log in only once the collector has subscribed
    (`serve` runs both; a broker alone for tests or tools does not wait)."""

    DRAIN_S = 10.0  # how long stop() lets the collector take what the broker holds

    def __init__(self, host: str, port: int, data_dir: Path,
                 wait_for_collector: bool = False) -> None:
        self.host, self.port = host, port
        self.wait_for_collector = wait_for_collector
        self.password_file = broker_dir(data_dir) / "passwd"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker",
                                        daemon=True)
        self._broker: CheckedBroker | None = None

    def _config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                f"{__name__}.PasswordFileAuth": {"password_file": str(self.password_file)},
                f"{__name__}.AclFileTopics": {"acl_file": str(self.password_file.parent / "acl")},
            },
        }

    async def _start(self) -> None:
        self._broker = CheckedBroker(self._config(), self._loop, self.password_file,
                                     self.wait_for_collector)
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
        """Devices and tools first (they keep what is not acknowledged), then what the broker
        still holds goes to the collector, then the broker stops: its memory is all it has."""
        if self._broker is not None:
            self._run(self._broker.close_to_all_but_the_collector(self.DRAIN_S), self.DRAIN_S + 2)
            self._run(self._broker.shutdown(), 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self, work: Coroutine, timeout: float) -> None:
        try:
            asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=timeout)
        except Exception:  # stopping anyway
            log.debug("broker stop", exc_info=True)
