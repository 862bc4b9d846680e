"""`machikit workshop flash`: flash every board that is plugged in, one after another.

Boards are told apart by their USB serial number: a board that resets during
flashing (or is plugged in again) is recognised and not flashed twice.
flashed.json (next to devices.json) records serial number → device after each
success, so the instructor can stop and restart the loop at any time.
"""

import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machikit.texts import say
from machikit.workshop.prepare import load_devices, write_secret

FLASHED_FILE = "flashed.json"
POLL_S = 1.0
# USB serial numbers that many boards share: CP210x bridges on cheap ESP32 boards ship
# with "0001", CH340 bridges have none (then Windows reuses the COM name per USB socket).
# Such a board is asked for its own id instead, or every board after the first would
# look "already flashed".
SHARED_SERIALS = {"", "0", "0001", "0000"}


@dataclass
class Broker:
    host: str
    port: int = 1883
    tls: bool = False
    mqtt_url: str | None = None  # admin/collector credentials to watch the status topics
    online_timeout_s: float = 120.0


@dataclass
class FlashLoop:
    devices_path: Path
    wifi_ssid: str
    wifi_password: str
    broker: Broker
    report: Callable[[str], None] = print
    # boards plugged in at the last poll: a board is only flashed when it comes in, so a
    # failed one is retried by plugging it in again (after the cable or Thonny is fixed)
    present: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.devices_path = Path(self.devices_path)
        self.data = load_devices(self.devices_path)
        self.flashed_path = self.devices_path.parent / FLASHED_FILE
        self.flashed: dict[str, str] = _load_json(self.flashed_path)

    def poll(self) -> list[threading.Thread]:
        """One look at the USB ports; flashes the new boards. Returns the online watchers."""
        # Port and serial number together: two boards with the same serial (see
        # SHARED_SERIALS) plugged in at once are still two boards.
        boards = {f"{board.device}|{board.serial_number or ''}": board
                  for board in _flash().find_boards()}
        new = [key for key in boards if key not in self.present]
        self.present = set(boards)
        watchers = []
        for key in new:
            watcher = self._plugged(key, boards[key])
            if watcher:
                watchers.append(watcher)
        return watchers

    def next_device(self) -> dict | None:
        done = set(self.flashed.values())
        return next((d for d in self.data.get("devices", []) if d["device"] not in done), None)

    def _plugged(self, key: str, board: Any) -> threading.Thread | None:
        identity = self._identity(board)
        if identity is None:
            return None
        if identity in self.flashed:
            self.report(say("workshop_flash_known", port=board.device,
                            device=self.flashed[identity]))
            return None
        device = self.next_device()
        if device is None:
            self.report(say("workshop_flash_all_done", port=board.device))
            return None
        return self._flash(identity, board, device)

    def _identity(self, board: Any) -> str | None:
        """The USB serial number when it is the board's own, else the board's unique id."""
        serial = board.serial_number or ""
        if serial not in SHARED_SERIALS:
            return str(serial)
        flash = _flash()
        try:
            return "board-id:" + flash.read_board_id(board.device)
        except flash.FlashError as err:
            self.report(say("workshop_flash_failed", port=board.device, device="?",
                            detail=err))
            return None

    def _flash(self, key: str, board: Any, device: dict) -> threading.Thread | None:
        flash = _flash()
        self.report(say("workshop_flash_start", port=board.device, device=device["device"],
                        participant=device["participant"]))
        try:
            flash.flash_board(board.device, device["app"], self.device_config(device))
        except flash.FlashError as err:
            self.report(say("workshop_flash_failed", port=board.device,
                            device=device["device"], detail=err))
            return None
        self.flashed[key] = device["device"]
        write_secret(self.flashed_path, json.dumps(self.flashed, indent=2) + "\n")
        self.report(say("workshop_flash_done", port=board.device, device=device["device"]))
        return self._watch(device["device"])

    def device_config(self, device: dict) -> dict:
        """The board's config.json (firmware/config.example.json's shape); flash_board adds
        the app part with the app's default settings."""
        return {
            "wifi": {"ssid": self.wifi_ssid, "password": self.wifi_password, "country": "JP"},
            "broker": {"host": self.broker.host, "port": self.broker.port,
                       "tls": self.broker.tls},
            "device": {"town": self.data["town"], "name": device["device"],
                       "user": device["user"], "password": device["password"]},
        }

    def _watch(self, name: str) -> threading.Thread | None:
        """Wait for the first status in the background: the next board can be flashed now."""
        if not self.broker.mqtt_url:
            self.report(say("workshop_flash_no_watch", device=name))
            return None
        thread = threading.Thread(target=self._wait_online, args=(name,), daemon=True,
                                  name=f"online-{name}")
        thread.start()
        return thread

    def _wait_online(self, name: str) -> None:
        url, timeout = self.broker.mqtt_url, self.broker.online_timeout_s
        if url and _flash().wait_online(url, self.data["town"], name, timeout):
            self.report(say("workshop_flash_online", device=name))
        else:
            self.report(say("workshop_flash_not_online", device=name, seconds=int(timeout)))


def _flash() -> Any:
    """machikit.flash (find_boards, flash_board, FlashError, wait_online), looked up by
    name: it is built alongside this module, and only the workshop extra needs it."""
    return importlib.import_module("machikit.flash")


def _load_json(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def run_loop(loop: FlashLoop, once: bool = False) -> int:
    """Poll every second until Ctrl-C (the instructor decides when the workshop is done)."""
    loop.report(say("workshop_flash_waiting", left=_left(loop)))
    while True:
        loop.poll()
        if once:
            return 0
        time.sleep(POLL_S)


def _left(loop: FlashLoop) -> int:
    return len(loop.data.get("devices", [])) - len(set(loop.flashed.values()))
