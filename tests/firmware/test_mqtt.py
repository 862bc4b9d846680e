"""The firmware's MQTT link (firmware/lib/mk_mqtt.py + vendored umqtt.simple 1.3.4) on the
real MicroPython unix port, against the test bed's real Mosquitto and the real collector.

Heap: the runner gets `-X heapsize=256k` (HEAP). machikit/contract.py is given as a .mpy
(mpy-cross, as a board gets it: as source it does not even import in 64 KB); mk_mqtt.py,
umqtt/simple.py and the runner are compiled from source here, which costs heap a board never
spends. The runner prints what the modules and a connected Link keep after a collection;
the first test checks that it fits a Pico W with room to spare.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.mqtt import make_client
from collector.settings import parse_mqtt_url
from machikit import contract
from tests.collector.helpers import (
    Publisher,
    clear_retained,
    credentials,
    forget_session,
    free_port,
    unique_town,
    wait_until,
)
from tests.collector.stacks import Stack, real_stack
from tests.conftest import REPO
from tests.firmware.process import MicroPythonProcess

pytestmark = pytest.mark.services

LIB = REPO / "firmware" / "lib"
RUNNER = Path(__file__).with_name("mqtt_runner.py")
HEAP = "256k"  # see the module docstring
T0 = 1795650000000  # readings' time: must not be in the future for the collector


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Runner(MicroPythonProcess):
    """mqtt_runner.py in a MicroPython process."""

    def __init__(self, micropython: str, contract_dir: Path, *args: object) -> None:
        super().__init__(micropython, HEAP, str(RUNNER), [str(a) for a in args],
                         f"{LIB}:{contract_dir}")


class Retained:
    """Reads a retained topic the way a dashboard would (paho, the test credentials)."""

    def __init__(self, mqtt_url: str, topic: str) -> None:
        target = parse_mqtt_url(mqtt_url)
        self.client_id = f"test-retained-{os.getpid()}-{time.monotonic_ns()}"
        self.client = make_client(target, self.client_id, "311")
        self.messages: list[dict] = []
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_message = lambda c, u, m: self.messages.append(json.loads(m.payload))
        self.client.connect(target.host, target.port)
        self.client.loop_start()

    def latest(self) -> dict | None:
        return self.messages[-1] if self.messages else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def stack(database_url: str, mqtt_url: str) -> Iterator[Stack]:
    with real_stack(database_url, mqtt_url, unique_town()) as s:
        yield s


def test_readings_are_stored_once_and_the_will_says_offline(
    micropython: str, contract_mpy: Path, stack: Stack, mqtt_url: str
) -> None:
    town, device = stack.town, "snow-01"
    stack.storage.add_device(town, device, "snow_gauge")  # unknown devices are quarantined
    host, port, user, password = credentials(mqtt_url)
    status = Retained(mqtt_url, contract.topic(town, device, contract.STATUS))
    runner = Runner(micropython, contract_mpy, "flow", host, port, user, password, town,
                    device, 20, now_ms() - 60_000)
    try:
        assert runner.wait_for("connect")["ok"] is True
        sent = runner.wait_for("sent")
        assert sent["acks"] == [True] * 20 and sent["attempts"] == 1
        # Measured (1.25 unix): modules ~21 KB (mk_mqtt + umqtt compiled from source here,
        # contract as .mpy), connected Link after 20 sends ~24 KB; the runner also passes
        # with -X heapsize=64k and fails at 48k. A Pico W has ~150-200 KB.
        assert sent["heap"]["after"] < 40_000, sent["heap"]
        assert wait_until(lambda: stack.storage.counts()["readings"] >= 20, 20)
        time.sleep(0.5)  # a duplicate would show up now
        counts = stack.storage.counts()
        assert counts["readings"] == 20 and counts["quarantine"] == 0
        rows = stack.storage.recent("readings", 50)
        assert sorted(r["seq"] for r in rows) == list(range(20))  # each message once
        assert {(r["device"], r["sensor"], r["quality"]) for r in rows} == {
            (device, "snow_depth", "reference")}
        assert wait_until(lambda: (status.latest() or {}).get("state") == "online", 10)
        online = status.latest()
        assert online == {"v": 1, "state": "online", "fw": "test-0.1",
                          "heap": online["heap"]}
        assert wait_until(lambda: stack.storage.counts()["device_status"] >= 1, 10)

        runner.kill()  # the broker notices after 1.5 x keepalive (10 s) or the closed TCP
        assert wait_until(lambda: (status.latest() or {}).get("state") == "offline", 30)
        assert status.latest() == contract.offline_will()
        assert wait_until(lambda: stack.storage.counts()["device_status"] >= 2, 10)
    finally:
        runner.kill()
        status.close()
        forget_session(mqtt_url, f"mk-{town}-{device}")
    # A new reader still gets `offline`: the will was retained.
    again = Retained(mqtt_url, contract.topic(town, device, contract.STATUS))
    try:
        assert wait_until(lambda: again.latest() is not None, 10)
        assert again.latest() == contract.offline_will()
    finally:
        again.close()
        clear_retained(mqtt_url, [contract.topic(town, device, contract.STATUS)])


def test_retained_command_reaches_the_callback(
    micropython: str, contract_mpy: Path, mqtt_url: str
) -> None:
    town, device = unique_town(), "printer-1"
    host, port, user, password = credentials(mqtt_url)
    pub = Publisher(mqtt_url, f"test-cmd-{town}", "311")
    cmd_topic = contract.topic(town, device, contract.COMMAND)
    try:
        # Published before the device is even on: retained, so it gets it at connect.
        pub.client.publish(cmd_topic, contract.encode(contract.command({"interval_s": 60})),
                           qos=1, retain=True)
        assert pub.client.is_connected()
        time.sleep(0.3)
        runner = Runner(micropython, contract_mpy, "flow", host, port, user, password, town,
                        device, 0, now_ms())
        try:
            first = runner.wait_for("cmd")
            assert first["msg"] == {"v": 1, "set": {"interval_s": 60}}
            # A new command while it runs arrives through poll() -> check_msg().
            runner.wait_for("sent")
            pub.client.publish(cmd_topic, contract.encode(contract.command({"interval_s": 5})),
                               qos=1, retain=True)
            assert wait_until(
                lambda: sum(1 for line in runner.lines if line["op"] == "cmd") >= 2, 10)
            cmds = [line["msg"] for line in runner.lines if line["op"] == "cmd"]
            assert cmds[1] == {"v": 1, "set": {"interval_s": 5}}
            assert not [line for line in runner.lines if line["op"] == "lost"]
        finally:
            runner.kill()
    finally:
        # Clear the retained messages this test left on the broker.
        for channel in (contract.COMMAND, contract.STATUS):
            pub.client.publish(contract.topic(town, device, channel), b"", qos=1, retain=True)
        time.sleep(0.3)
        pub.close()
        forget_session(mqtt_url, pub.client_id)


def test_closed_port_returns_false_then_recovers_after_backoff(
    micropython: str, contract_mpy: Path, mqtt_url: str
) -> None:
    host, port, user, password = credentials(mqtt_url)
    town = unique_town()
    proc = subprocess.run(
        [micropython, "-X", f"heapsize={HEAP}", str(RUNNER), "backoff", host, str(free_port()),
         str(port), user, password, town, "bus-01", str(now_ms())],
        env={**os.environ, "MICROPYPATH": f"{LIB}:{contract_mpy}"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["op"] == "end"
    closed = [line for line in lines if line["op"] == "closed"]
    too_soon = [line for line in lines if line["op"] == "too_soon"]
    assert [line["ok"] for line in closed + too_soon] == [False] * 10  # False, never raised
    assert [line["attempts"] for line in closed] == [1, 2, 3, 4, 5]
    assert [line["attempts"] for line in too_soon] == [1, 2, 3, 4, 5]  # no retry while waiting
    # Exponential backoff with jitter: the wait is between half and all of 1, 2, 4, 8, 8 s.
    for line, full in zip(closed, [1000, 2000, 4000, 8000, 8000], strict=True):
        assert full // 2 <= line["wait"] <= full, line
        assert "111" in line["error"] or "ECONNREFUSED" in line["error"]
    by_op = {line["op"]: line for line in lines}
    assert by_op["too_soon_good"]["ok"] is False and by_op["too_soon_good"]["attempts"] == 5
    assert by_op["recovered"]["ok"] is True and by_op["recovered"]["attempts"] == 6
    assert by_op["again"]["ok"] is True and by_op["again"]["attempts"] == 6  # same connection
    # Goodbye on close(): clear the retained `offline` it left.
    clear_retained(mqtt_url, [contract.topic(town, "bus-01", contract.STATUS)])
