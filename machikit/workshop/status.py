"""`machikit workshop status`: whose board is online, from the retained status topics.

Every device publishes a retained status ("online", and "offline" as its last
will), so subscribing shows the current state of every board at once, also
of boards that came online before the view was started.
"""

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from machikit import contract
from machikit.texts import say, say_short


@dataclass
class Seen:
    state: str
    last_ms: int | None  # the device's clock in the status, or when we received it live


class StatusWatch:
    """Collects the latest status of each device of one town."""

    def __init__(self, mqtt_url: str, town: str) -> None:
        from collector.mqtt import connect, make_client
        from collector.settings import parse_mqtt_url

        self.town = town
        self.seen: dict[str, Seen] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.refused: str | None = None
        self.target = target = parse_mqtt_url(mqtt_url)
        # MQTT 3.1.1: the embedded broker speaks nothing newer, and Mosquitto both.
        self.client = make_client(target, f"machikit-workshop-{time.monotonic_ns()}",
                                  protocol="3.1.1")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        connect(self.client, target)
        self.client.loop_start()

    def _on_connect(self, client, _userdata, _flags, reason, _props=None) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            self.subscribed.set()  # nothing more will come: stop waiting
        else:
            client.subscribe(contract.ROOT + "/" + self.town + "/+/" + contract.STATUS, qos=1)

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            _town, device, _channel = contract.parse_topic(message.topic)
            status = contract.decode(contract.STATUS, message.payload)
        except (contract.ContractError, ValueError):
            return  # an empty retained message (cleared) or a broken one: nothing to show
        # A retained copy may be hours old: without the device's clock we cannot say when.
        received = None if message.retain else time.time_ns() // 1_000_000
        with self.lock:
            self.seen[device] = Seen(status["state"], status.get("t", received))

    def snapshot(self) -> dict[str, Seen]:
        with self.lock:
            return dict(self.seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def table(entries: list[dict], seen: dict[str, Seen]) -> str:
    """One line per roster device, in roster order; a board never seen counts as offline."""
    head = [say_short("workshop_col_participant"), say_short("workshop_col_device"),
            say_short("workshop_col_state"), say_short("workshop_col_last_seen")]
    rows = [head]
    for entry in entries:
        status = seen.get(entry["device"])
        state = status.state if status else "offline"
        rows.append([entry["participant"], entry["device"],
                     say_short("workshop_online" if state == "online" else "workshop_offline"),
                     _time(status.last_ms if status else None)])
    online = sum(1 for entry in entries if (s := seen.get(entry["device"])) and
                 s.state == "online")
    return _align(rows) + "\n" + say("workshop_status_total", online=online, total=len(entries))


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def _align(rows: list[list[str]]) -> str:
    """Pad by display width: a Japanese character takes two columns in a terminal."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths,
                                                                                    strict=True))
                     for row in rows)


def _width(text: str) -> int:
    return sum(1 if ord(ch) < 0x2E80 else 2 for ch in text)


def run_status(mqtt_url: str, town: str, entries: list[dict], once: bool,
               connect_s: float = 10.0) -> int:
    watch = StatusWatch(mqtt_url, town)
    if os.name == "nt":
        os.system("")  # turns on the escape codes that clear the screen in cmd.exe
    try:
        # retained messages arrive right after the subscription is acknowledged
        if not watch.subscribed.wait(connect_s):
            print(say("mqtt_unreachable", host=watch.target.host, port=watch.target.port,
                      detail="timeout"))
            return 1
        if watch.refused:
            print(say("mqtt_refused", detail=watch.refused))
            return 1
        time.sleep(0.5)
        if once:
            print(table(entries, watch.snapshot()))
            return 0
        while True:
            print("\033[2J\033[H" + table(entries, watch.snapshot()), flush=True)
            time.sleep(2.0)
    finally:
        watch.close()
