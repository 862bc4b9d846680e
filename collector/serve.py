"""`machikit serve`: broker (embedded or external) + storage + collector in one process."""

import argparse
import logging
import signal
import threading
from typing import TYPE_CHECKING

from collector.broker import EmbeddedBroker, local_url
from collector.ingest import Collector, migrate_when_ready
from collector.settings import Settings, load_settings, redact
from collector.storage import Storage, open_storage

if TYPE_CHECKING:
    from collector.api.server import WebServer
from machikit.private import private_folder
from machikit.texts import say

log = logging.getLogger("machikit.serve")


class Server:
    """Everything `serve` runs, startable and stoppable from code (demo, tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.broker: EmbeddedBroker | None = None
        self.storage: Storage | None = None
        self.collector: Collector | None = None
        self._writer: threading.Thread | None = None
        self.web: WebServer | None = None
        self.failed = False

    @property
    def mqtt_url(self) -> str:
        return self.settings.mqtt_url or local_url(self.settings)

    def start(self) -> None:
        s = self.settings
        if s.embedded_broker or s.database_url is None:
            private_folder(s.data_dir)  # password hashes, secrets: owner-only (design.md)
        if s.embedded_broker:
            self.broker = EmbeddedBroker(s.embedded_mqtt_host, s.embedded_mqtt_port, s.data_dir,
                                         wait_for_collector=True)
            local_url(s)  # make sure the collector's user exists before clients connect
            self.broker.start()
        self.storage = open_storage(s.database())
        migrate_when_ready(self.storage, self.stop_event)
        self.collector = Collector(s, self.storage, self.mqtt_url)
        self.collector.start()
        if not self.collector.subscribed.wait(10):
            log.warning("the collector has not subscribed yet; it keeps trying")
        self._writer = threading.Thread(target=self._write_until_stopped, name="collector",
                                        daemon=True)
        self._writer.start()
        if s.web.enabled:
            from collector.api.server import WebServer  # FastAPI only when the web part runs

            self.web = WebServer(s)
            self.web.start()

    @property
    def web_url(self) -> str | None:
        """Where the public map is, e.g. http://127.0.0.1:8080 (None: web part off)."""
        return self.web.url if self.web else None

    def _write_until_stopped(self) -> None:
        """A writer that dies must stop the whole server (a supervisor restarts it),
        never leave it accepting messages that nobody stores."""
        assert self.collector is not None
        try:
            self.collector.run(self.stop_event)
        except Exception:
            log.critical("the collector stopped on an unexpected error", exc_info=True)
            self.failed = True
            self.stop_event.set()

    def stop(self) -> None:
        if self.web:
            self.web.stop()
        if self.broker:  # while the collector still stores what the broker holds
            if self.collector:
                self.collector.leaving = True
            self.broker.stop()
        self.stop_event.set()
        if self._writer:
            self._writer.join(timeout=30)
        if self.collector:
            self.collector.close()

    def describe(self) -> str:
        ready = say("serve_ready", mqtt=redact(self.mqtt_url),
                    database=redact(self.settings.database()))
        return ready + ("\n" + say("web_ready", url=self.web_url + "/") if self.web_url else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")


def wait_for_signal(stop: threading.Event, seconds: float | None = None) -> None:
    """Block until Ctrl-C / SIGTERM (or `seconds` pass)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait(seconds)


def run_serve(args: argparse.Namespace) -> int:
    server = Server(load_settings(args.config))
    server.start()
    print(server.describe(), flush=True)
    try:
        wait_for_signal(server.stop_event)
    finally:
        server.stop()
    print(say("stopped"))
    return 1 if server.failed else 0
