"""The status view against the real Mosquitto: retained statuses of a town, as a table."""

import json
import time

import pytest

from machikit import contract
from machikit.workshop.status import StatusWatch, run_status, table
from tests.collector.helpers import clear_retained, free_port, publish, unique_town, wait_until

pytestmark = pytest.mark.services
ENTRIES = [{"participant": "山田 太郎", "device": "snow-01"},
           {"participant": "佐藤 花子", "device": "printer-01"},
           {"participant": "鈴木 一郎", "device": "snow-02"}]


def status_topic(town: str, device: str) -> str:
    return contract.topic(town, device, contract.STATUS)


def test_table_shows_who_is_online(mqtt_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    town = unique_town()
    seen_ms = int(time.time() * 1000) - 5000
    topics = [status_topic(town, e["device"]) for e in ENTRIES]
    try:
        publish(mqtt_url, [
            (topics[0], json.dumps(contract.status("online", t=seen_ms)).encode()),
            (topics[1], json.dumps(contract.offline_will()).encode()),
        ], retain=True)
        watch = StatusWatch(mqtt_url, town)
        try:
            assert wait_until(lambda: len(watch.snapshot()) == 2, timeout=10)
            lines = table(ENTRIES, watch.snapshot()).splitlines()
            assert lines[1].split()[:4] == ["山田", "太郎", "snow-01", "オンライン/online"]
            assert time.strftime("%H:%M:%S", time.localtime(seen_ms / 1000)) in lines[1]
            assert "オフライン/offline" in lines[2] and lines[2].rstrip().endswith("-")
            assert "オフライン/offline" in lines[3]  # never seen
            assert "1 of 3 online" in lines[4]

            # a board coming online while the view runs (no clock yet: the time we saw it)
            publish(mqtt_url, [(topics[2], json.dumps(contract.status("online")).encode())],
                    retain=True)
            assert wait_until(lambda: "snow-02" in watch.snapshot(), timeout=10)
            assert watch.snapshot()["snow-02"].last_ms is not None
            assert "2 of 3 online" in table(ENTRIES, watch.snapshot())
        finally:
            watch.close()
        assert run_status(mqtt_url, town, ENTRIES, once=True) == 0
        assert "2 of 3 online" in capsys.readouterr().out
    finally:
        clear_retained(mqtt_url, topics)  # leave nothing behind on the broker


def test_wrong_password_is_one_line(mqtt_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    scheme, rest = mqtt_url.split("://", 1)
    user = rest.split(":", 1)[0]
    host = rest.rsplit("@", 1)[1]
    assert run_status(f"{scheme}://{user}:wrong@{host}", "nowhere", ENTRIES, once=True) == 1
    assert "refused" in capsys.readouterr().out


def test_unreachable_broker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    url = f"mqtt://u:p@127.0.0.1:{port}"
    assert run_status(url, "nowhere", ENTRIES, once=True, connect_s=1.0) == 1
    assert f"Cannot reach the MQTT broker 127.0.0.1:{port}" in capsys.readouterr().out
