"""Browser tests of the public map: the real server, Debian's chromium, Playwright.

One machikit server (embedded broker + SQLite, the `machikit serve` default)
runs for the whole browser suite with a small town: public vehicles and a
snow gauge, plus a private bus and a printer buzzer that must never reach a
browser. Messages go in over MQTT exactly as a device sends them.

Playwright drives Debian's chromium (MACHIKIT_CHROMIUM from the test bed, or
/usr/bin/chromium), not a browser of its own: Playwright's download needs
internet access that CI and town networks may not have.
"""

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Route, sync_playwright

from collector.broker import local_url
from collector.serve import Server
from collector.settings import Settings
from machikit import contract
from tests.collector.helpers import Publisher, free_port, wait_until
from tests.conftest import REPO, SERVICES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
TOWN = "testtown"
HOME = (42.3154, 140.9736)  # Muroran city hall: where the test town's devices are

PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}

# What each public device shows, and what must never show anywhere.
PUBLIC = {"bus-01": "市内線バス1号車", "gomi-01": "ごみ収集車1号", "stall-01": "焼きとり屋台",
          "snow-01": "積雪計（市役所）"}
HIDDEN = {"secret-bus": "非公開の試験車", "printer-1": "窓口プリンター"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class MapServer:
    server: Server
    publisher: Publisher
    url: str  # http://127.0.0.1:PORT
    seq: int = 1000

    def send(self, device: str, channel: str, msg: dict) -> None:
        self.publisher.send_msg(TOWN, device, channel, msg)

    def move(self, device: str, lat: float, lon: float, heading: float = 90.0) -> None:
        self.seq += 1
        self.send(device, contract.POSITION,
                  contract.position(self.seq, now_ms(), lat, lon, speed=8.0, heading=heading))

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def shows_everything(self) -> bool:
        """The API shows the three vehicles and the gauge (404 while nothing is public)."""
        api = f"/api/v1/towns/{TOWN}"
        try:
            vehicles = self.get_json(api + "/vehicles")["features"]
            sensors = self.get_json(api + "/sensors")["features"]
        except urllib.error.HTTPError:
            return False
        return len(vehicles) == 3 and len(sensors) == 1


def register_devices(server: Server) -> None:
    storage = server.storage
    assert storage is not None
    storage.add_device(TOWN, "bus-01", "bus", True, PUBLIC["bus-01"])
    storage.add_device(TOWN, "gomi-01", "garbage_truck", True, PUBLIC["gomi-01"])
    # The stall's last fix is older than its stale_after_s: shown greyed with its age.
    storage.add_device(TOWN, "stall-01", "stall", True, PUBLIC["stall-01"],
                       settings={"stale_after_s": 60})
    storage.add_device(TOWN, "snow-01", "snow_gauge", True, PUBLIC["snow-01"],
                       settings={"location": [HOME[0] - 0.004, HOME[1] - 0.006]})
    storage.add_device(TOWN, "secret-bus", "bus", False, HIDDEN["secret-bus"])
    # Registered as public, but a printer buzzer is internal: never on the map.
    storage.add_device(TOWN, "printer-1", "printer_buzzer", True, HIDDEN["printer-1"],
                       settings={"location": list(HOME)})


def publish_town(town: MapServer) -> None:
    t = now_ms()
    town.send("bus-01", contract.POSITION,
              contract.position(1, t, HOME[0], HOME[1], speed=8.3, heading=45.0))
    town.send("gomi-01", contract.POSITION,
              contract.position(1, t, HOME[0] + 0.006, HOME[1] + 0.008, speed=4.0, heading=180.0))
    town.send("stall-01", contract.POSITION,
              contract.position(1, t - 300_000, HOME[0] + 0.002, HOME[1] - 0.009))
    town.send("secret-bus", contract.POSITION,
              contract.position(1, t, HOME[0] + 0.001, HOME[1] + 0.001, speed=5.0))
    town.send("printer-1", contract.EVENT, contract.event(1, t, "paper_arrived"))
    # 24 hourly snow depths (30 → 35 cm), sent as a device sends its offline buffer.
    hour = 3_600_000
    history = [(contract.READING,
                contract.reading(seq, t - (24 - seq) * hour + 60_000, "snow_depth",
                                 round(30.0 + seq * 5 / 24, 1), "cm", "reference"))
               for seq in range(1, 24)]
    town.send("snow-01", contract.BATCH, contract.batch(history))
    town.send("snow-01", contract.READING,
              contract.reading(24, t, "snow_depth", 35.0, "cm", "reference"))
    town.send("snow-01", contract.READING, contract.reading(25, t, "air_temp", -4.5, "degC"))
    assert town.publisher.all_acknowledged(30)


@pytest.fixture(scope="package")
def map_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MapServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("map"), embedded_mqtt_port=free_port(),
                        web={"port": 0}, town=TOWN, map={"town": TOWN})
    server = Server(settings)
    server.start()
    publisher = None
    try:
        register_devices(server)
        publisher = Publisher(local_url(settings, "test-publisher"),
                              "test-publisher-" + secrets.token_hex(2), settings.protocol())
        assert server.web_url, "the web part of the server did not start"
        town = MapServer(server, publisher, server.web_url)
        publish_town(town)
        assert wait_until(town.shows_everything, timeout=20), \
            "the public API never showed the test town"
        yield town
    finally:
        if publisher:
            publisher.close()
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    path = Path(SERVICES.get("MACHIKIT_CHROMIUM") or CHROMIUM)
    if not path.exists():  # a skip fails under CI=true (tests/conftest.py)
        pytest.skip(f"{path} is missing: apt install chromium, or machikit dev services up")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One browser tab on the map, cut off from everything but our server."""

    def __init__(self, browser: Browser, base_url: str, device: dict) -> None:
        self.base_url = base_url
        self.context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", **device)
        self.page = self.context.new_page()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        # The server's Content-Security-Policy must never stop a part of the map.
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if "Content Security Policy" in message.text else None)
        # Town intranets block CDNs and the internet: so do we, for every test.
        self.context.route("**/*", self._only_our_server)

    def _only_our_server(self, route: Route) -> None:
        if route.request.url.startswith(self.base_url + "/"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector(".leaflet-marker-icon[data-id='bus-01']", timeout=10_000)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


OpenVisit = Callable[[dict], Visit]


@pytest.fixture
def visit(browser: Browser, map_server: MapServer) -> Iterator[OpenVisit]:
    """visit(PHONE) → a Visit; every tab is closed after the test."""
    opened: list[Visit] = []

    def open_visit(device: dict) -> Visit:
        v = Visit(browser, map_server.url, device)
        opened.append(v)
        return v

    yield open_visit
    for v in opened:
        assert not v.errors, f"JavaScript errors on the page: {v.errors}"
        v.close()
