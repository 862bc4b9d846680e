"""`machikit demo`: the embedded server plus simulated devices, printing what is stored."""

import argparse
import threading
import time

from collector.broker import local_url
from collector.serve import Server, wait_for_signal
from collector.settings import Settings, load_settings, parse_mqtt_url
from collector.simulate import Bus, GarbageTruck, PrinterBuzzer, SimulatedDevice, SnowGauge
from collector.storage import Storage
from machikit.texts import say, say_short

TOWN = "muroran"
DEVICES: tuple[tuple[type[SimulatedDevice], str, bool, str], ...] = (
    # class, name, public, label
    (Bus, "bus-01", True, "市内線バス1号車"),
    (GarbageTruck, "gomi-01", True, "ごみ収集車1号"),
    (SnowGauge, "snow-01", True, "積雪計（市役所）"),
    (SnowGauge, "snow-02", True, "積雪計（東町）"),
    (PrinterBuzzer, "printer-01", False, "窓口プリンター"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("--duration", type=float, default=None,
                        help="この秒数で終了 / stop after this many seconds")
    parser.add_argument("--every", type=float, default=5.0,
                        help="表示間隔（秒） / print interval in seconds")


def start_devices(server: Server, stop: threading.Event) -> list[threading.Thread]:
    assert server.storage is not None
    threads = []
    for cls, name, public, label in DEVICES:
        server.storage.add_device(TOWN, name, cls.kind, public, label)
        url = server.settings.mqtt_url or local_url(server.settings, f"demo-{name}")
        device = cls(TOWN, name, parse_mqtt_url(url), server.settings.protocol())
        thread = threading.Thread(target=device.run, args=(stop,), name=name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def summary(server: Server) -> str:
    assert server.storage is not None
    counts = server.storage.counts()
    return ", ".join(f"{table} {n}" for table, n in counts.items())


def latest_lines(storage: Storage) -> list[str]:
    """One line per device (and sensor): the newest thing stored for it."""
    lines: dict[tuple, str] = {}
    for row in storage.recent("positions", 50):
        lines.setdefault((row["device"],), f"{row['lat']:.5f}, {row['lon']:.5f}"
                                            f"  {row['speed'] or 0:.1f} m/s")
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
    server = Server(settings)
    server.start()
    print(server.describe(), flush=True)
    print(say("demo_intro", count=len(DEVICES)), flush=True)
    devices_stop = threading.Event()
    threads = start_devices(server, devices_stop)
    try:
        show_until_stopped(server, args.duration, args.every)
    finally:
        # Devices first, so their goodbye (offline status) is still stored.
        devices_stop.set()
        for thread in threads:
            thread.join(timeout=5)
        time.sleep(0.5)
        print(say("demo_done", summary=summary(server)), flush=True)
        server.stop()
    return 1 if server.failed else 0


def show_until_stopped(server: Server, duration: float | None, every: float) -> None:
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
            print("\n".join(latest_lines(server.storage)), flush=True)
