"""The two stacks the behaviour tests run on.

embedded: amqtt broker + SQLite in the test process (`machikit serve` defaults)
real:     the test bed's Mosquitto + TimescaleDB, collector in the test process
"""

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from collector.broker import local_url
from collector.serve import Server
from collector.settings import Settings
from collector.storage import Storage, open_storage
from machikit import contract
from tests.collector.helpers import (
    Publisher,
    clear_retained,
    forget_session,
    free_port,
    fresh_database,
    unique_town,
)

# The map server of a test stack on any free port: 8080 may be taken (a demo, another run).
ANY_FREE_PORT = {"port": 0}


class Stack:
    def __init__(self, server: Server, town: str,
                 publisher_url: Callable[[str], str] | None = None) -> None:
        self.server = server
        self.town = town
        settings = server.settings
        self._publisher_url = publisher_url
        # A connection of our own, like any reader of the database would have.
        self.storage: Storage = open_storage(settings.database())
        self.publishers: list[Publisher] = []

    @property
    def counters(self):  # type: ignore[no-untyped-def]
        assert self.server.collector is not None
        return self.server.collector.counters

    def publisher(self, name: str) -> Publisher:
        url = self._publisher_url(name) if self._publisher_url else self.server.mqtt_url
        pub = Publisher(url, f"{self.town}-{name}-{secrets.token_hex(2)}",
                        self.server.settings.protocol())
        self.publishers.append(pub)
        return pub

    def close(self) -> None:
        for pub in self.publishers:
            pub.close()
            if not self.server.settings.embedded_broker:
                forget_session(self.server.mqtt_url, pub.client_id)
        self.server.stop()
        if not self.server.settings.embedded_broker:
            forget_session(self.server.mqtt_url, self.server.settings.mqtt_client_id)
        self.storage.close()


@contextlib.contextmanager
def embedded_stack(tmp_path: Path, town: str) -> Iterator[Stack]:
    settings = Settings(data_dir=tmp_path / "data", embedded_mqtt_port=free_port(),
                        stats_interval_s=1, web=ANY_FREE_PORT)
    server = Server(settings)
    server.start()
    stack = Stack(server, town, lambda name: local_url(settings, f"test-{name}"))
    try:
        yield stack
    finally:
        stack.close()


@contextlib.contextmanager
def real_stack(database_url: str, mqtt_url: str, town: str) -> Iterator[Stack]:
    with fresh_database(database_url) as db:
        settings = Settings(database_url=db, mqtt_url=mqtt_url, town=town,
                            mqtt_client_id=f"collector-{town}", stats_interval_s=1,
                            web=ANY_FREE_PORT)
        server = Server(settings)
        server.start()
        stack = Stack(server, town)
        try:
            yield stack
        finally:
            stack.close()


@contextlib.contextmanager
def device_stack(database_url: str, mqtt_url: str, device: str, kind: str) -> Iterator[Stack]:
    """A real collector for a fresh town with `device` registered (unknown devices are
    quarantined). Afterwards the device's broker session and retained status are removed,
    so no later test meets them."""
    with real_stack(database_url, mqtt_url, unique_town()) as stack:
        stack.storage.add_device(stack.town, device, kind)
        try:
            yield stack
        finally:
            forget_session(mqtt_url, f"mk-{stack.town}-{device}")
            clear_retained(mqtt_url, [contract.topic(stack.town, device, contract.STATUS)])


@contextlib.contextmanager
def migrated(url: str) -> Iterator[Storage]:
    """Storage at `url` (sqlite:///… or postgresql://…) with every migration applied."""
    store = open_storage(url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()
