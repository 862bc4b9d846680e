"""`machikit demo`: the embedded server plus a simulated town, printing what is stored.

The town is Muroran: a bus on a real route of the 道南バス GTFS-JP feed, a garbage
truck on a real street, a festival stall, two snow gauges and a printer buzzer
at the citizen counter (collector/demo_data/README.md has the sources).
"""

import argparse
import threading
import time
from urllib.parse import quote, urlsplit

from collector import registry
from collector.serve import Server, wait_for_signal
from collector.settings import Settings, load_settings, parse_mqtt_url
from collector.simulate import (
    Bus,
    GarbageTruck,
    PrinterBuzzer,
    SimulatedDevice,
    SnowGauge,
    Stall,
    load_demo_data,
    metres,
)
from collector.storage import Storage
from machikit.texts import say, say_short

TOWN = "muroran"
# Places, from bus stops of the same feed (stops.txt).
CITY_HALL = (42.315152, 140.975177)  # 市役所前
HIGASHIMACHI = (42.344453, 141.029757)  # 東町ターミナル
FESTIVAL = (42.318994, 140.970710)  # 中央町, where the 室蘭ねぷた festival is held
DEPOT_RADIUS_M = 120  # the truck is hidden from the public map inside this circle
BUS_LEAVING = "八丁平入口"  # the demo starts as the bus leaves this stop: a long stretch follows


def town_devices() -> list[tuple[SimulatedDevice, bool, str, dict]]:
    """Each device with: public?, label on the map, publish settings (docs/api.md)."""
    route = load_demo_data("muroran-route.json")
    truck = load_demo_data("muroran-truck.json")
    depot = truck["depot"]
    return [
        # service_hours (docs/api.md): "[days ]HH:MM-HH:MM" in the town's time zone. A real
        # town copies its timetable, e.g. ["mon-sat 06:30-21:30", "sun 08:00-18:00"], and
        # the bus is hidden outside them. The demo runs all day, to be seen at any hour.
        (Bus(TOWN, "bus-01", route, leaving=BUS_LEAVING), True,
         f"市内線バス1号車（{route['line_name']}）", {"service_hours": ["00:00-24:00"]}),
        # Hidden while inside its depot: residents see it leave and come back.
        (GarbageTruck(TOWN, "gomi-01", truck), True, "ごみ収集車1号",
         {"depots": [{"lat": depot["lat"], "lon": depot["lon"], "radius_m": DEPOT_RADIUS_M}]}),
        (Stall(TOWN, "yatai-01", FESTIVAL), True, "屋台（中央町のお祭り）", {}),
        # Gauges do not move: their place is a setting, not a GPS fix.
        (SnowGauge(TOWN, "snow-01"), True, "積雪計（市役所）", {"location": list(CITY_HALL)}),
        (SnowGauge(TOWN, "snow-02"), True, "積雪計（東町）", {"location": list(HIGASHIMACHI)}),
        # Internal: never on the public map, whatever `public` says.
        (PrinterBuzzer(TOWN, "printer-01"), False, "窓口プリンター", {}),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("--duration", type=float, default=None,
                        help="この秒数で終了 / stop after this many seconds")
    parser.add_argument("--every", type=float, default=5.0,
                        help="表示間隔（秒） / print interval in seconds")


def start_devices(server: Server, devices: list[tuple[SimulatedDevice, bool, str, dict]],
                  stop: threading.Event) -> list[threading.Thread]:
    """Register each device with its publish settings, then let it send."""
    assert server.storage is not None
    for device, public, label, settings in devices:
        server.storage.add_device(TOWN, device.name, device.kind, public, label,
                                  settings=settings)
    urls = login_urls(server, [device.name for device, *_ in devices])
    threads = []
    for device, *_ in devices:
        thread = threading.Thread(
            target=device.run, name=device.name, daemon=True,
            args=(stop, parse_mqtt_url(urls[device.name]), server.settings.protocol()))
        thread.start()
        threads.append(thread)
    return threads


def login_urls(server: Server, names: list[str]) -> dict[str, str]:
    """On the embedded broker each simulated device logs in as a real one does: its own
    user and a new password, its own topics only (the broker's acl, the same files a
    workshop or `machikit device broker-files` writes). A town broker's URL is used as
    it is (its users are the town's business)."""
    if server.settings.mqtt_url:
        return dict.fromkeys(names, server.settings.mqtt_url)
    assert server.storage is not None
    passwords = {name: registry.new_password(server.storage, TOWN, name) for name in names}
    registry.write_embedded_broker_files(server.storage, server.settings.data_dir)
    where = urlsplit(server.mqtt_url)  # the collector's own: the same host and port
    return {name: f"mqtt://{quote(registry.mqtt_user(TOWN, name))}:{quote(password)}"
                  f"@{where.hostname}:{where.port}" for name, password in passwords.items()}


def summary(server: Server) -> str:
    assert server.storage is not None
    counts = server.storage.counts()
    return ", ".join(f"{table} {n}" for table, n in counts.items())


def depots(devices: list[tuple[SimulatedDevice, bool, str, dict]]) -> dict[str, list[dict]]:
    return {device.name: settings["depots"] for device, _, _, settings in devices
            if "depots" in settings}


def latest_lines(storage: Storage, depots: dict[str, list[dict]] | None = None) -> list[str]:
    """One line per device (and sensor): the newest thing stored for it."""
    lines: dict[tuple, str] = {}
    for row in storage.recent("positions", 50):
        lat, lon = float(row["lat"]), float(row["lon"])  # type: ignore[arg-type]
        heading = f"  {row['heading']:.0f}°" if row["heading"] is not None else ""
        hidden = any(metres((lat, lon), (d["lat"], d["lon"])) <= d["radius_m"]
                     for d in (depots or {}).get(str(row["device"]), []))
        note = "  " + say_short("demo_in_depot") if hidden else ""
        lines.setdefault((row["device"],), f"{lat:.5f}, {lon:.5f}"
                                            f"  {row['speed'] or 0:.1f} m/s{heading}{note}")
    for row in storage.recent("readings", 50):
        ref = "（" + say_short("reference_value") + "）" if row["quality"] == "reference" else ""
        lines.setdefault((row["device"], row["sensor"]),
                         f"{row['sensor']} {row['value']} {row['unit']}{ref}")
    for row in storage.recent("events", 20):
        value = f" {row['value']:.0f} {row['unit']}" if row["value"] is not None else ""
        lines.setdefault((row["device"],), f"{row['event']}{value}")
    return [f"  {key[0]:<11} {text}" for key, text in sorted(lines.items())]


def run_demo(args: argparse.Namespace) -> int:
    settings: Settings = load_settings(args.config)
    settings.map.town = settings.map.town or TOWN
    settings.map.title = settings.map.title or "室蘭市の運行状況（まちキット デモ）"
    settings.map.title_en = settings.map.title_en or "Muroran live map (machikit demo)"
    devices = town_devices()
    server = Server(settings)
    server.start()
    print(server.describe(), flush=True)
    if server.web_url:  # None when the web part is off ([web] enabled = false)
        print("\n  → " + say("demo_open_map", url=server.web_url + "/") + "\n", flush=True)
    print(say("demo_intro", count=len(devices)), flush=True)
    devices_stop = threading.Event()
    threads = start_devices(server, devices, devices_stop)
    try:
        show_until_stopped(server, args.duration, args.every, depots(devices))
    finally:
        # Devices first, so their goodbye (offline status) is still stored.
        devices_stop.set()
        for thread in threads:
            thread.join(timeout=5)
        time.sleep(0.5)
        print(say("demo_done", summary=summary(server)), flush=True)
        server.stop()
    return 1 if server.failed else 0


def show_until_stopped(server: Server, duration: float | None, every: float,
                       depot_areas: dict[str, list[dict]] | None = None) -> None:
    """Print what is stored every `every` s until Ctrl-C or `duration` has passed."""
    stop = threading.Event()
    deadline = time.monotonic() + duration if duration else None
    while not (stop.is_set() or server.stop_event.is_set()):
        left = deadline - time.monotonic() if deadline else every
        if left <= 0:
            return
        wait_for_signal(stop, min(every, left))
        print(say("demo_stored", summary=summary(server)), flush=True)
        if server.storage is not None:
            print("\n".join(latest_lines(server.storage, depot_areas)), flush=True)
