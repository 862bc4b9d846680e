"""`machikit flash --wait` with the board's own login, on both brokers: it sees the board
come online and never pushes it off (on Mosquitto's devices' listener the watcher and the
board share one client id, the login name)."""

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from collector.registry import add_device
from collector.storage import Storage
from machikit import contract
from machikit.flash.watch import wait_online
from tests.collector import test_broker_acl
from tests.collector.helpers import unique_town, wait_until
from tests.collector.test_broker_acl import Broker, rewrite

storage, broker = test_broker_acl.storage, test_broker_acl.broker


class Board:
    """A device as the firmware connects: its client id, a will, its retained status."""

    def __init__(self, port: int, town: str, name: str, user: str, password: str) -> None:
        self.disconnects = 0
        self.online = threading.Event()
        status = contract.topic(town, name, contract.STATUS)
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                             client_id=f"mk-{town}-{name}")
        self.c.username_pw_set(user, password)
        self.c.will_set(status, json.dumps(contract.offline_will()), 1, True)
        self.c.reconnect_delay_set(1, 1)

        def on_connect(c: mqtt.Client, *_: object) -> None:
            c.publish(status, json.dumps(contract.status("online")), 1, True)
            self.online.set()

        self.c.on_connect = on_connect
        self.c.on_disconnect = lambda *_: setattr(self, "disconnects", self.disconnects + 1)
        self.c.connect_async("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_the_watcher_sees_a_board_that_comes_later(storage: Storage, broker: Broker,
                                                   tmp_path: Path) -> None:
    town = unique_town()
    device = add_device(storage, town, "snow-01", "snow_gauge")
    rewrite(storage, broker)
    url = f"mqtt://{device.user}:{device.password}@127.0.0.1:{broker.device_port}"
    result: list[bool] = []
    watcher = threading.Thread(target=lambda: result.append(
        wait_online(url, town, "snow-01", 20)))
    started = time.monotonic()
    watcher.start()
    time.sleep(1.5)  # the board resets and joins the network
    board = Board(broker.device_port, town, "snow-01", device.user, device.password)
    watcher.join(25)
    took = time.monotonic() - started
    assert result == [True]
    assert took < 10
    assert board.online.wait(5)
    time.sleep(2)  # the watcher is gone and did not push the board off
    assert board.disconnects == 0
    board.close()


def test_the_watcher_sees_a_board_already_online(storage: Storage, broker: Broker) -> None:
    town = unique_town()
    device = add_device(storage, town, "snow-02", "snow_gauge")
    rewrite(storage, broker)
    board = Board(broker.device_port, town, "snow-02", device.user, device.password)
    assert board.online.wait(5)
    url = f"mqtt://{device.user}:{device.password}@127.0.0.1:{broker.device_port}"
    assert wait_online(url, town, "snow-02", 20)
    assert wait_until(lambda: board.c.is_connected(), 5)  # back, if it was pushed off once
    board.close()


def test_the_watcher_gives_up_on_time_with_a_wrong_password(storage: Storage,
                                                            broker: Broker) -> None:
    town = unique_town()
    device = add_device(storage, town, "snow-03", "snow_gauge")
    rewrite(storage, broker)
    url = f"mqtt://{device.user}:wrong@127.0.0.1:{broker.device_port}"
    started = time.monotonic()
    assert not wait_online(url, town, "snow-03", 3)
    assert time.monotonic() - started < 6
