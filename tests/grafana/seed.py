"""Realistic rows for the dashboard tests: two towns, buses, snow gauges, a printer.

Times are relative to now (the "online now" panel compares with now()), rounded so
the hourly and per-day expectations below do not depend on the second a test runs.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from collector.storage import Batch, Storage

JST = ZoneInfo("Asia/Tokyo")
MIN = 60_000
HOUR = 60 * MIN
TOWN, OTHER_TOWN = "muroran", "noboribetsu"
BUS_POSITIONS = 240  # every 30 s for 2 hours
SNOW_BARS = [5.0, 3.5]  # the rises the noise rule must keep (others are jitter/melt)
ALARMS_BY_DAYS_AGO = {3: 2, 2: 3, 1: 1}  # JST days before today -> paper_alarm count
LEFT_SECONDS = [30, 90, 120, 400, 1000, 4000]  # paper_taken values (seconds left)


@dataclass
class Seeded:
    now_ms: int
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _status(t: int, dev: int, state: str, boot: int, cause: str | None,
            rssi: int = -60, buffered: int = 0, dropped: int = 0) -> tuple:
    return (t, dev, t + 20, state, "0.3.0", boot, 1000, rssi, buffered, 80_000, 3.9, cause,
            dropped, True, 9, 0.9)


def _fleet(seeded: Seeded, batch: Batch) -> None:
    start = seeded.now_ms - 2 * HOUR
    for name in ("bus-01", "bus-02", "other-bus"):
        dev = seeded.ids[name]
        for seq in range(BUS_POSITIONS):
            t = start + seq * 30_000
            batch.add("positions", (t, dev, seq, t + 80, True, 42.31 + seq / 1e4, 140.97,
                                    12.0, 8.0, 90.0, 7 + seq % 3, 0.8 + (seq % 2) / 10))
    truck = seeded.ids["gt-01"]
    for seq in range(60):  # an hour of rounds, finished an hour ago
        t = start + seq * MIN
        batch.add("positions", (t, truck, seq, t + 80, True, 42.32, 140.98, None, 5.0,
                                180.0, 8, 1.1))
    bus = seeded.ids["bus-01"]
    batch.add("device_status", _status(start - MIN, bus, "online", 3, "power_on"))
    # a watchdog reboot in the middle of the service, with a backlog it then sent
    batch.add("device_status", _status(start + HOUR, bus, "online", 4, "watchdog",
                                       buffered=35, dropped=2, rssi=-75))
    batch.add("device_status", _status(start - MIN, seeded.ids["bus-02"], "online", 7,
                                       "power_on"))
    batch.add("device_status", _status(start - MIN, truck, "online", 2, "power_on"))
    batch.add("device_status", _status(start + HOUR, truck, "offline", 2, None))


def _snow(seeded: Seeded, batch: Batch) -> None:
    first_hour = seeded.now_ms // HOUR * HOUR - 12 * HOUR
    # hourly level of snow-01: +5 at hour 4, +1 (noise) at 5, melt at 6, +3.5 at 8
    levels = [30, 30, 30, 30, 35, 36, 33, 33, 36.5, 36.5, 36.5]
    jitter = [-1, 1, 0, -1, 1, 0]  # +-1 cm ultrasonic noise; each hour's median = level
    for name, profile in (("snow-01", levels), ("snow-02", [20] * len(levels))):
        dev = seeded.ids[name]
        for hour, level in enumerate(profile):
            for k, noise in enumerate(jitter):
                t = first_hour + hour * HOUR + k * 10 * MIN
                seq = hour * 100 + k * 3
                batch.add("readings", (t, dev, seq, t, True, "snow_depth", level + noise,
                                       "cm", "reference"))
                batch.add("readings", (t, dev, seq + 1, t, True, "air_temp", -3.5 + k / 2,
                                       "degC", "reference"))
                batch.add("readings", (t, dev, seq + 2, t, True, "battery", 3.8, "V", None))
        batch.add("device_status", _status(first_hour, dev, "online", 1, "power_on", rssi=-82))


def _printer(seeded: Seeded, batch: Batch) -> None:
    dev, seq = seeded.ids["printer-01"], 0
    today = seeded.now.astimezone(JST).replace(hour=0, minute=0, second=0, microsecond=0)
    left = iter(LEFT_SECONDS)
    for days_ago, alarms in ALARMS_BY_DAYS_AGO.items():
        day = today - timedelta(days=days_ago)
        for i in range(alarms):
            arrived = _ms(day.replace(hour=9, minute=50 + i))
            alarm = _ms(day.replace(hour=10, minute=i))
            for t, event, value in ((arrived, "paper_arrived", None), (alarm, "paper_alarm", 60)):
                batch.add("events", (t, dev, seq, t, True, event, value, "s", None))
                seq += 1
            taken = alarm + 5 * MIN
            batch.add("events", (taken, dev, seq, taken, True, "paper_taken",
                                 float(next(left)), "s", None))
            seq += 1


def _quarantine(seeded: Seeded, batch: Batch) -> None:
    t = seeded.now_ms - 30 * MIN
    rows = [(f"machikit/v1/{TOWN}/bus-01/pos", "bad_json")] * 3 + [
        (f"machikit/v1/{TOWN}/bus-99/pos", "unknown_device"),
        (f"machikit/v1/{OTHER_TOWN}/bus-01/pos", "bad_json"),  # the other town's
        ("garbage", "bad_topic"),  # names no town: shown to every town
    ]
    for i, (topic, reason) in enumerate(rows):
        batch.add("quarantine", (t + i, topic, b"\x00not json", reason, "seeded"))


def seed(storage: Storage) -> Seeded:
    seeded = Seeded(now_ms=int(time.time() // 60 * 60_000))
    devices = [(TOWN, "bus-01", "bus", "バス1号車"), (TOWN, "bus-02", "bus", None),
               (TOWN, "gt-01", "garbage_truck", "収集車"), (TOWN, "snow-01", "snow_gauge", None),
               (TOWN, "snow-02", "snow_gauge", None), (TOWN, "printer-01", "printer_buzzer", None),
               (OTHER_TOWN, "other-bus", "bus", None)]
    for town, name, kind, label in devices:
        seeded.ids[name] = storage.add_device(town, name, kind, label=label).id
    batch = Batch()
    for part in (_fleet, _snow, _printer, _quarantine):
        part(seeded, batch)
    storage.write(batch)
    return seeded
