"""The printer and snow jobs' default publish() (pi.runtime.connect): into the job's outbox on
disk, sent by the Sender thread over the Link, against the real Mosquitto and collector."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pi import config, runtime
from tests.collector.helpers import (
    credentials,
    wait_until,
)
from tests.collector.stacks import Stack, device_stack

pytestmark = pytest.mark.services

DEVICE = "printer-01"


@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with device_stack(database_url, mqtt_url, DEVICE, "printer_buzzer") as s:
        yield s


def test_published_events_reach_the_collector_and_stop_says_offline(
    stack: Stack, mqtt_url: str, tmp_path: Path,
) -> None:
    host, port, user, password = credentials(mqtt_url)
    path = tmp_path / "printer.toml"
    path.write_text(
        f'[device]\ntown = "{stack.town}"\nname = "{DEVICE}"\nuser = "{user}"\n'
        f'password = "{password}"\n\n[broker]\nhost = "{host}"\nport = {port}\ntls = false\n\n'
        f'[printer]\noutbox = "{tmp_path / "outbox.sqlite3"}"\n')
    cfg = config.load("printer", path)
    stop = threading.Event()
    publish = runtime.connect(cfg, stop)
    t = runtime.wall_ms() or 1795650000000
    for n in range(5):
        publish("event", {"t": t + n, "event": "paper_arrived"})
    assert wait_until(lambda: stack.storage.counts()["events"] == 5, 20)
    stop.set()
    assert wait_until(lambda: any(s["state"] == "offline" for s in
                                  stack.storage.recent("device_status", 10)), 20)
    rows = sorted(stack.storage.recent("events", 10), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
