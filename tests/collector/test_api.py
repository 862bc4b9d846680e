"""Public API v1 on both storage engines, through the real uvicorn server.

The town below has one device for each way the publish policy hides things;
the tests check that none of them leaks through any endpoint or the live stream.
"""

import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.api.guard import page_policy
from collector.api.server import WebServer
from collector.settings import Settings
from collector.storage import Batch, Storage, open_storage
from tests.collector.helpers import free_port, fresh_database, wait_until

TOWN = "testtown"
NOW = time.time_ns() // 1_000_000
MIN = 60_000
DEPOT = {"lat": 42.33, "lon": 140.98, "radius_m": 150}
HIDDEN = ("secret-01", "gomi-01", "night-01", "printer-01", "old-01", "snow-private")


def hours_around(start_min: int, end_min: int) -> str:
    """A service-hours entry from now+start to now+end minutes, Japan time."""
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    a, b = now + timedelta(minutes=start_min), now + timedelta(minutes=end_min)
    return f"{a:%H:%M}-{b:%H:%M}"


def fix(device_id: int, seq: int, t: int, lat: float = 42.31, lon: float = 140.97) -> tuple:
    return (t, device_id, seq, t + 20, True, lat, lon, None, 8.0, 90.0, 9, 0.8)


def reading(device_id: int, seq: int, t: int, sensor: str, value: float, unit: str) -> tuple:
    return (t, device_id, seq, t + 20, True, sensor, value, unit, "reference")


def seed(storage: Storage) -> dict[str, int]:
    add = storage.add_device
    devices = {
        "bus-01": add(TOWN, "bus-01", "bus", True, "バス1号車", {"service_hours": ["00:00-24:00"]}),
        "stale-01": add(TOWN, "stale-01", "bus", True, "バス2号車"),
        "shift-01": add(TOWN, "shift-01", "bus", True, "バス3号車",
                        {"service_hours": [hours_around(-20, 60)]}),
        "secret-01": add(TOWN, "secret-01", "bus", False, "非公開バス"),
        "gomi-01": add(TOWN, "gomi-01", "garbage_truck", True, "ごみ収集車", {"depots": [DEPOT]}),
        "night-01": add(TOWN, "night-01", "bus", True, "深夜バス",
                        {"service_hours": [hours_around(300, 360)]}),
        "old-01": add(TOWN, "old-01", "bus", True, "古いバス"),
        "printer-01": add(TOWN, "printer-01", "printer_buzzer", True, "窓口プリンター"),
        "snow-01": add(TOWN, "snow-01", "snow_gauge", True, "積雪計",
                       {"location": [42.32, 140.99]}),
        "snow-private": add(TOWN, "snow-private", "snow_gauge", False, "非公開積雪計"),
    }
    ids = {name: device.id for name, device in devices.items()}
    batch = Batch()
    for seq, age in enumerate((60, 30, 10), 1):  # bus-01 drives north
        batch.add("positions", fix(ids["bus-01"], seq, NOW - age * 1000, 42.30 + seq / 1000))
    batch.add("positions", fix(ids["stale-01"], 1, NOW - 10 * MIN))
    batch.add("positions", fix(ids["shift-01"], 1, NOW - 40 * MIN, 42.25))  # before the shift
    batch.add("positions", fix(ids["shift-01"], 2, NOW - 5 * MIN, 42.26))
    batch.add("positions", fix(ids["secret-01"], 1, NOW - 5000))
    batch.add("positions", fix(ids["gomi-01"], 1, NOW - 5 * MIN, 42.34))  # out on its round
    batch.add("positions", fix(ids["gomi-01"], 2, NOW - 5000, 42.3301, 140.9801))  # back home
    batch.add("positions", fix(ids["night-01"], 1, NOW - 5000))
    batch.add("positions", fix(ids["old-01"], 1, NOW - 120 * MIN))
    batch.add("events", (NOW - 5000, ids["printer-01"], 1, NOW, True, "paper_alarm", 60, "s",
                         None))
    for seq, age in enumerate(range(170, 0, -10), 1):  # every 10 min for ~3 h
        t = NOW - age * MIN
        batch.add("readings", reading(ids["snow-01"], 2 * seq, t, "snow_depth", 30 + seq / 2, "cm"))
        batch.add("readings", reading(ids["snow-01"], 2 * seq + 1, t, "air_temp", -5.0, "degC"))
        batch.add("readings", reading(ids["snow-private"], seq, t, "snow_depth", 99.0, "cm"))
    storage.write(batch)
    return ids


class Api:
    def __init__(self, web: WebServer, storage: Storage, ids: dict[str, int]) -> None:
        self.web, self.storage, self.ids = web, storage, ids
        self.http = httpx.Client(base_url=web.url, timeout=10)
        self.base = f"/api/v1/towns/{TOWN}"

    def get(self, path: str, **kw: object) -> httpx.Response:
        return self.http.get(self.base + path, **kw)  # type: ignore[arg-type]

    def names(self, path: str) -> set[str]:
        return {f["id"] for f in self.get(path).json()["features"]}


@pytest.fixture(params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    if request.param == "sqlite":
        with ApiServer(f"sqlite:///{tmp_path}/api.db") as running:
            yield running
        return
    with fresh_database(request.getfixturevalue("database_url")) as url, ApiServer(url) as running:
        yield running


class ApiServer:
    """The API on `url`, seeded by `seed_with`; keyword arguments change the settings."""

    def __init__(self, url: str, seed_with: Callable[[Storage], dict[str, int]] = seed,
                 **settings: object) -> None:
        self.url, self.seed_with = url, seed_with
        self.settings: dict = {"town": TOWN, **settings}
        self.settings["web"] = {"port": 0, "live_poll_s": 0.1, "heartbeat_s": 1,
                                **self.settings.get("web", {})}

    def __enter__(self) -> Api:
        self.storage = open_storage(self.url)
        self.storage.migrate()
        ids = self.seed_with(self.storage)
        settings = Settings(database_url=self.url, mqtt_url="mqtt://unused:1", **self.settings)
        self.web = WebServer(settings)
        self.web.start()
        self.api = Api(self.web, self.storage, ids)
        return self.api

    def __exit__(self, *_: object) -> None:
        self.api.http.close()
        self.web.stop()
        self.storage.close()


def test_only_public_vehicles_on_duty_outside_depots(api: Api) -> None:
    response = api.get("/vehicles")
    assert response.status_code == 200
    features = {f["id"]: f for f in response.json()["features"]}
    assert set(features) == {"bus-01", "stale-01", "shift-01"}
    bus = features["bus-01"]["properties"]
    assert features["bus-01"]["geometry"]["coordinates"] == [140.97, 42.303]  # newest fix
    assert (bus["label"], bus["kind"], bus["stale"], bus["t"]) == ("バス1号車", "bus", False,
                                                                   NOW - 10_000)
    assert bus["time"].endswith("+09:00")
    assert features["stale-01"]["properties"]["stale"] is True
    assert api.names("/vehicles?kind=garbage_truck") == set()


def test_late_data_never_moves_a_marker_backwards(api: Api) -> None:
    late = Batch()
    late.add("positions", fix(api.ids["bus-01"], 99, NOW - 20_000, 42.0))  # replayed buffer
    api.storage.write(late)
    time.sleep(0.5)
    coords = next(f["geometry"]["coordinates"] for f in api.get("/vehicles").json()["features"]
                  if f["id"] == "bus-01")
    assert coords == [140.97, 42.303]
    newer = Batch()
    newer.add("positions", fix(api.ids["bus-01"], 100, time.time_ns() // 1_000_000, 42.31))
    api.storage.write(newer)
    assert wait_until(lambda: [140.97, 42.31] in [
        f["geometry"]["coordinates"] for f in api.get("/vehicles").json()["features"]], 5)


def test_cache_headers_and_etag(api: Api) -> None:
    first = api.get("/vehicles")
    assert first.headers["cache-control"] == "public, max-age=2"
    again = api.get("/vehicles", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert api.get("/sensors").headers["cache-control"] == "public, max-age=10"
    assert "no-store" in api.http.get("/api/v1/health").headers["cache-control"]


def test_track_is_policy_filtered(api: Api) -> None:
    track = api.get("/vehicles/bus-01/track", params={"minutes": 5}).json()
    assert track["geometry"]["type"] == "LineString"
    assert len(track["geometry"]["coordinates"]) == 3
    assert track["properties"]["times"] == sorted(track["properties"]["times"])
    shift = api.get("/vehicles/shift-01/track", params={"minutes": 60}).json()
    assert shift["geometry"]["coordinates"] == [[140.97, 42.26]]  # not the fix before its shift
    for name in HIDDEN:
        assert api.get(f"/vehicles/{name}/track").status_code == 404, name


def test_sensors_and_history(api: Api) -> None:
    sensors = {f["id"]: f for f in api.get("/sensors").json()["features"]}
    assert set(sensors) == {"snow-01"}
    gauge = sensors["snow-01"]
    assert gauge["geometry"]["coordinates"] == [140.99, 42.32]
    readings = {r["sensor"]: r for r in gauge["properties"]["readings"]}
    assert readings["snow_depth"]["value"] == 38.5 and readings["snow_depth"]["unit"] == "cm"
    assert readings["snow_depth"]["quality"] == "reference"
    assert readings["air_temp"]["unit"] == "degC"
    history = api.get("/sensors/snow-01/history",
                      params={"sensor": "snow_depth", "hours": 4, "bucket": 3600}).json()
    assert history["unit"] == "cm" and history["bucket_s"] == 3600
    assert sum(p["count"] for p in history["points"]) == 17
    assert all(p["min"] <= p["avg"] <= p["max"] for p in history["points"])
    assert [p["t"] % 3_600_000 for p in history["points"]] == [0] * len(history["points"])
    assert api.get("/sensors/snow-private/history", params={"sensor": "snow_depth"}
                   ).status_code == 404


def test_bad_requests_get_a_bilingual_answer(api: Api) -> None:
    too_long = api.get("/vehicles/bus-01/track", params={"minutes": 9999})
    assert too_long.status_code == 422
    assert "リクエストが正しくありません" in too_long.json()["detail"]
    assert "Bad request" in too_long.json()["detail"]
    bucket = api.get("/sensors/snow-01/history", params={"sensor": "snow_depth", "bucket": 7})
    assert bucket.status_code == 422 and "bucket" in bucket.json()["detail"]
    unknown = api.http.get("/api/v1/towns/nowhere/vehicles")
    assert unknown.status_code == 404 and "No such town" in unknown.json()["detail"]


def test_health(api: Api) -> None:
    health = api.http.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["snapshot_age_ms"] < 5000


def test_nothing_hidden_leaks_through_any_endpoint(api: Api) -> None:
    bodies = [api.get(p).text for p in ("/vehicles", "/sensors", "/vehicles/bus-01/track")]
    bodies.append(api.http.get("/").text)
    bodies.append(api.http.get("/openapi.json").text)
    for body in bodies:
        for name in HIDDEN:
            assert name not in body


class SseReader:
    """Reads a live stream in a thread, keeping everything received."""

    def __init__(self, url: str) -> None:
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()

    def _read(self, url: str) -> None:
        try:
            with self.client.stream("GET", url) as response:
                self.headers = response.headers
                for line in response.iter_lines():
                    with self.lock:
                        self.received.append(line)
        except httpx.HTTPError:
            pass  # the server closed the stream at the end of the test

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.received)

    def close(self) -> None:
        self.client.close()


def test_live_stream_shows_moves_and_never_hidden_devices(api: Api) -> None:
    reader = SseReader(f"{api.web.url}{api.base}/live")
    try:
        assert wait_until(lambda: "event: snapshot" in reader.text(), 5)
        assert reader.headers["content-type"].startswith("text/event-stream")
        now = time.time_ns() // 1_000_000
        batch = Batch()
        for name in ("secret-01", "gomi-01", "night-01"):  # fresh fixes the policy must hide
            batch.add("positions", fix(api.ids[name], 50, now, 42.3301, 140.9801))
        batch.add("events", (now, api.ids["printer-01"], 50, now, True, "paper_taken", 5, "s",
                             None))
        batch.add("positions", fix(api.ids["bus-01"], 50, now, 42.5))
        written = time.monotonic()
        api.storage.write(batch)
        assert wait_until(lambda: "42.5" in reader.text(), 5)
        print(f"live update after {time.monotonic() - written:.3f} s")
        assert wait_until(lambda: ": ping" in reader.text(), 3)  # heartbeat_s = 1
        text = reader.text()
        assert "event: update" in text
        for name in HIDDEN:
            assert name not in text
    finally:
        reader.close()


@pytest.mark.slow
def test_database_outage_keeps_the_map_up_and_health_says_so(database_url: str) -> None:
    """PostgreSQL stopped: the last snapshot is still served, health turns 503,
    and everything recovers by itself when the database is back."""
    from machikit import testbed

    if not testbed.is_controllable():
        pytest.skip("needs the project's test bed, run as root (machikit dev services up)")
    with fresh_database(database_url) as url, ApiServer(url) as api:
        assert api.names("/vehicles") == {"bus-01", "stale-01", "shift-01"}
        testbed.stop_postgres("fast")
        try:
            assert wait_until(lambda: api.http.get("/api/v1/health").status_code == 503, 30)
            assert api.http.get("/api/v1/health").json()["database"] == "unavailable"
            assert api.names("/vehicles") == {"bus-01", "stale-01", "shift-01"}
            assert api.get("/vehicles/bus-01/track").status_code == 503
        finally:
            testbed.start_postgres()
        assert wait_until(lambda: api.http.get("/api/v1/health").status_code == 200, 30)
        assert api.get("/vehicles/bus-01/track").status_code == 200


# --- the public API under attack --------------------------------------------------------

@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    """For what does not depend on the engine: the server's own limits and headers."""
    with ApiServer(f"sqlite:///{tmp_path}/api.db") as running:
        yield running


def raw_request(api: Api, head: bytes, body_parts: Iterator[bytes] | None = None,
                source: str = "127.0.0.1") -> bytes:
    """Send bytes as they are (no client library tidies them up) and read the answer
    until the server closes or goes quiet; b"" when it just closed the connection."""
    host, port = api.web.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5,
                                  source_address=(source, 0)) as sock:
        try:
            sock.sendall(head)
            for part in body_parts or ():
                sock.sendall(part)
        except OSError:
            pass  # closed while we were still sending: an answer may be waiting anyway
        return read_answer(sock)


def read_answer(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def still_serving(api: Api) -> bool:
    return api.http.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize("size", [20_000, 100_000, 2_000_000])
def test_a_huge_header_is_refused_and_the_server_goes_on(sqlite_api: Api, size: int) -> None:
    """20 KB and 100 KB arrive in one read (h11 takes them whole: 431 from the app);
    2 MB overflows h11's buffer (400 and closed)."""
    answer = raw_request(sqlite_api, big_header(size))
    assert refused_as(size, answer), answer[:200]
    assert still_serving(sqlite_api)
    normal = sqlite_api.http.get("/api/v1/health", headers={"X-Normal": "a" * 4000})
    assert normal.status_code == 200


def refused_as(size: int, answer: bytes) -> bool:
    """Over h11's buffer the parser gives up before the app runs (400, or closed while we
    still send): httptools instead read 50 MB into memory and handed it to the app."""
    if size > 300_000:
        return answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    return answer.startswith(b"HTTP/1.1 431 ") and b"Request too large" in answer


def big_header(size: int) -> bytes:
    return b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def test_several_workers_have_the_same_limits(tmp_path: Path) -> None:
    """`machikit api --workers 2` starts uvicorn another way (by import string)."""
    with contextlib.closing(open_storage(f"sqlite:///{tmp_path}/api.db")) as storage:
        storage.migrate()
        seed(storage)
    port = free_port()
    config = tmp_path / "machikit.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path}/api.db"\ntown = "{TOWN}"\n'
                      f"[web]\nport = {port}\n", encoding="utf-8", newline="\n")
    server = subprocess.Popen([sys.executable, "-m", "machikit", "api", "--config", str(config),
                               "--workers", "2"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        assert wait_until(lambda: healthy(http), 30)
        for size in (20_000, 2_000_000):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(big_header(size))
                answer = read_answer(sock)
            assert refused_as(size, answer), answer[:200]
        assert healthy(http)
        http.close()
    finally:
        server.terminate()
        server.wait(15)


def healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/api/v1/health").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("how", ["declared", "chunked"])
def test_a_big_body_gets_413(sqlite_api: Api, how: str) -> None:
    path = f"{sqlite_api.base}/vehicles"
    if how == "declared":  # said up front: refused before the body is read
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
        parts = iter([b"a" * 1000])
    else:  # no length given: counted while it arrives
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        parts = iter([b"4000\r\n" + b"a" * 0x4000 + b"\r\n"] * 10 + [b"0\r\n\r\n"])
    answer = raw_request(sqlite_api, head.encode(), parts)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert "Request too large" in answer.decode()
    small = sqlite_api.http.request("GET", path, content=b"x" * 1000)
    assert small.status_code == 200
    assert still_serving(sqlite_api)


def test_error_answers_never_repeat_what_was_asked(sqlite_api: Api) -> None:
    long = "z" * 3000
    answers = [
        sqlite_api.http.get(f"/api/v1/towns/{long}/vehicles"),
        sqlite_api.http.get(f"/map/{long}"),
        sqlite_api.get(f"/vehicles/{long}/track"),
        sqlite_api.get(f"/sensors/{long}/history", params={"sensor": "snow_depth"}),
        sqlite_api.get("/vehicles/bus-01/track", params={"minutes": long}),
        sqlite_api.get("/vehicles", params={"kind": long}),
        sqlite_api.get("/sensors/snow-01/history", params={"sensor": long}),
        sqlite_api.get("/sensors/snow-01/history", params={"sensor": "snow_depth",
                                                           "bucket": long}),
    ]
    for answer in answers:
        assert answer.status_code in (404, 422), answer.request.url
        assert long[:20] not in answer.text, answer.request.url
        assert len(answer.content) < 600, answer.request.url


def test_head_answers_like_get_without_a_body(sqlite_api: Api) -> None:
    paths = ["/", f"/map/{TOWN}", "/api/v1/health", f"{sqlite_api.base}/vehicles",
             f"{sqlite_api.base}/sensors", f"{sqlite_api.base}/vehicles/bus-01/track",
             f"{sqlite_api.base}/sensors/snow-01/history?sensor=snow_depth",
             f"{sqlite_api.base}/live", "/static/map/start.js"]
    for path in paths:
        head = sqlite_api.http.head(path)
        assert head.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"].split(";")[0] in (
            "text/html", "application/json", "text/event-stream", "text/javascript"), path
    assert sqlite_api.web.app.state.hub.client_count == 0  # HEAD opened no stream
    assert sqlite_api.http.head("/api/v1/towns/nowhere/vehicles").status_code == 404


def test_wildcards_and_unknown_towns_are_not_towns(tmp_path: Path) -> None:
    """With town = "+" (collect every town) neither "+" nor "#" become a town."""
    with ApiServer(f"sqlite:///{tmp_path}/api.db", town="+") as api:
        for town in ("+", "%2B", "%23", "nowhere", "testtown-not"):
            assert api.http.get(f"/api/v1/towns/{town}/vehicles").status_code == 404, town
            assert api.http.get(f"/api/v1/towns/{town}/sensors").status_code == 404, town
            assert api.http.get(f"/api/v1/towns/{town}/live").status_code == 404, town
            assert api.http.get(f"/map/{town}").status_code == 404, town
        assert api.names("/vehicles") == {"bus-01", "stale-01", "shift-01"}
        assert api.http.get(f"/map/{TOWN}").status_code == 200
        # A town exists once a device is registered there, even one not public (yet).
        api.storage.add_device("newtown", "bus-09", "bus", False)
        assert wait_until(
            lambda: api.http.get("/api/v1/towns/newtown/vehicles").status_code == 200, 10)
        assert api.http.get("/api/v1/towns/newtown/vehicles").json()["features"] == []
        assert api.http.get("/map/newtown").status_code == 200


def test_security_headers_everywhere(sqlite_api: Api) -> None:
    page = sqlite_api.http.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "img-src 'self' data: https://cyberjapandata.gsi.go.jp" in policy  # the tiles
    assert "unsafe-eval" not in policy
    for answer in (page, sqlite_api.get("/vehicles"), sqlite_api.http.get("/api/v1/health"),
                   sqlite_api.http.get("/static/map/start.js"),
                   sqlite_api.http.get("/api/v1/towns/nowhere/vehicles")):
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert answer.headers["x-frame-options"] == "DENY", answer.request.url
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert sqlite_api.get("/vehicles").headers["content-security-policy"].startswith(
        "default-src 'none'")


def test_the_page_policy_allows_the_town_s_own_tile_server() -> None:
    assert "img-src 'self' data: https://*.tile.openstreetmap.org;" in page_policy(
        "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: http://10.1.2.3:8000;" in page_policy(
        "http://10.1.2.3:8000/tiles/{z}/{x}/{y}.png")
    assert "img-src 'self' data:;" in page_policy("/tiles/{z}/{x}/{y}.png")  # this server


def open_stream(api: Api, source: str, extra: str = "") -> socket.socket:
    """A live stream from `source` (every 127.x.x.x is this machine on Linux), left open."""
    host, port = api.web.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
    sock.sendall(f"GET {api.base}/live HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return sock


def first_answer(sock: socket.socket) -> bytes:
    """The whole answer when refused; status, headers and snapshot when the stream opened."""
    received = b""
    while not answered(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def answered(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    if not _:
        return False
    if b" 200 " in head[:13]:
        return b"event: snapshot" in body
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    return length is not None and len(body) >= int(length[1])


def test_one_address_cannot_take_every_live_stream(sqlite_api: Api) -> None:
    """The default share is 20 streams per address. An address that is not a trusted
    proxy cannot escape it by making up X-Forwarded-For."""
    flood = []
    try:
        for n in range(20):
            flood.append(open_stream(sqlite_api, "127.0.0.2", f"X-Forwarded-For: 10.0.0.{n}\r\n"))
            assert b"event: snapshot" in first_answer(flood[-1]), n
        refused = open_stream(sqlite_api, "127.0.0.2", "X-Forwarded-For: 10.9.9.9\r\n")
        answer = first_answer(refused).decode()
        refused.close()
        assert answer.startswith("HTTP/1.1 429 "), answer
        assert "retry-after: 30" in answer.lower()
        assert "この接続元からのライブ接続が多すぎます" in answer
        other = open_stream(sqlite_api, "127.0.0.1")  # someone else still gets the map
        assert b"event: snapshot" in first_answer(other)
        other.close()
        flood.pop().close()  # a place given back is free again
        assert wait_until(lambda: sqlite_api.web.app.state.hub.per_address == {
            "127.0.0.2": 19}, 5)
        again = open_stream(sqlite_api, "127.0.0.2")
        assert b"event: snapshot" in first_answer(again)
        again.close()
    finally:
        for sock in flood:
            sock.close()
    assert wait_until(lambda: sqlite_api.web.app.state.hub.per_address == {}, 5)


# --- health: does the collector still hear the devices? ---------------------------------

def status(device_id: int, t: int, state: str) -> tuple:
    return (t, device_id, t, state, "1.0", 1, 1000, -60, 0, 50_000, None, None, 0, True,
            None, None)


def seed_silent(storage: Storage) -> dict[str, int]:
    """A bus that said "online" 20 minutes ago and nothing since."""
    bus = storage.add_device(TOWN, "bus-01", "bus", True, "バス1号車")
    batch = Batch()
    now = time.time_ns() // 1_000_000  # not NOW: that is when the module was imported
    batch.add("device_status", status(bus.id, now - 20 * MIN, "online"))
    storage.write(batch)
    return {"bus-01": bus.id}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_health_says_when_nothing_arrives_from_online_devices(
        engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path}/api.db" if engine == "sqlite" else stack.enter_context(
            fresh_database(request.getfixturevalue("database_url")))
        api = stack.enter_context(ApiServer(url, seed_silent))
        health = api.http.get("/api/v1/health")
        assert health.status_code == 503, health.text
        body = health.json()
        assert (body["status"], body["receiving"], body["devices_online"]) == (
            "degraded", "not_receiving", 1)
        assert 20 * MIN <= body["newest_message_age_ms"] < 21 * MIN
        assert body["database"] == "ok"

        now = time.time_ns() // 1_000_000
        fresh = Batch()
        fresh.add("positions", fix(api.ids["bus-01"], 1, now))
        api.storage.write(fresh)
        assert wait_until(lambda: api.http.get("/api/v1/health").status_code == 200, 10)
        body = api.http.get("/api/v1/health").json()
        assert body["receiving"] == "ok" and body["newest_message_age_ms"] < 10_000

        gone = Batch()  # the device said goodbye: silence is then expected
        gone.add("device_status", status(api.ids["bus-01"], now + 1, "offline"))
        api.storage.write(gone)
        assert wait_until(lambda: api.http.get("/api/v1/health").json()["receiving"]
                          == "no_devices_online", 10)
        assert api.http.get("/api/v1/health").status_code == 200
