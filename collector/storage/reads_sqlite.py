"""What the public API reads from SQLite (mixed into SqliteStorage).

Every query walks an index: the newest row per device (or per device and
sensor) is one index probe, so the live stream can ask twice a second.
"""

import sqlite3
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from collector.storage.base import Device

DEVICE_COLUMNS = "id, town, name, kind, public, label, settings"

# Each sensor of a device once, by hopping along the (device_id, sensor, time) index.
SENSORS = """
WITH RECURSIVE s(sensor) AS (
    SELECT (SELECT min(sensor) FROM readings WHERE device_id = :d AND time > :since)
    UNION ALL
    SELECT (SELECT min(sensor) FROM readings
            WHERE device_id = :d AND sensor > s.sensor AND time > :since)
    FROM s WHERE s.sensor IS NOT NULL
)
SELECT sensor FROM s WHERE sensor IS NOT NULL
"""


# The newest row by device time, one index probe per table: received_at of that row
# is when the newest message arrived (replayed old data never becomes "newest").
DATA_TABLES = ("positions", "readings", "events", "device_status")
ONLINE_DEVICES = """
SELECT count(*) FROM devices d WHERE d.revoked_at IS NULL AND (
    SELECT state FROM device_status s WHERE s.device_id = d.id ORDER BY time DESC LIMIT 1
) = 'online'
"""


class SqliteReads:
    db: sqlite3.Connection
    _lock: threading.Lock

    def _all(self, query: str, args: tuple | dict = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(query, args).fetchall()

    def public_devices(self, town: str | None = None) -> list[Device]:
        from collector.storage.sqlite import _device

        where = "public = 1 AND revoked_at IS NULL" + (" AND town = ?" if town else "")
        rows = self._all(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where} ORDER BY town, name",
                         (town,) if town else ())
        return [_device(row) for row in rows]

    def latest_positions(self, device_ids: list[int], since_ms: int) -> dict[int, dict]:
        latest = {}
        for device_id in device_ids:
            for t, lat, lon, speed, heading in self._all(
                "SELECT time, lat, lon, speed, heading FROM positions"
                " WHERE device_id = ? AND time > ? ORDER BY time DESC LIMIT 1",
                (device_id, since_ms),
            ):
                latest[device_id] = {"t": t, "lat": lat, "lon": lon, "speed": speed,
                                     "heading": heading}
        return latest

    def latest_readings(self, device_ids: list[int], since_ms: int) -> dict[int, list[dict]]:
        latest: dict[int, list[dict]] = {}
        for device_id in device_ids:
            for (sensor,) in self._all(SENSORS, {"d": device_id, "since": since_ms}):
                for t, value, unit, quality in self._all(
                    "SELECT time, value, unit, quality FROM readings WHERE device_id = ?"
                    " AND sensor = ? AND time > ? ORDER BY time DESC LIMIT 1",
                    (device_id, sensor, since_ms),
                ):
                    latest.setdefault(device_id, []).append(
                        {"sensor": sensor, "value": value, "unit": unit, "quality": quality,
                         "t": t})
        return latest

    def track(self, device_id: int, since_ms: int, limit: int = 5000) -> list[dict]:
        rows = self._all(
            "SELECT time, lat, lon FROM positions WHERE device_id = ? AND time > ?"
            " ORDER BY time LIMIT ?", (device_id, since_ms, limit))
        return [{"t": t, "lat": lat, "lon": lon} for t, lat, lon in rows]

    def reading_history(self, device_id: int, sensor: str, since_ms: int, until_ms: int,
                        bucket_ms: int, zone: str) -> dict:
        """Average, min and max per bucket; buckets start on the town's local clock."""
        offset = datetime.fromtimestamp(until_ms / 1000, ZoneInfo(zone)).utcoffset()
        utc_offset_ms = int(offset.total_seconds() * 1000) if offset else 0
        rows = self._all(
            "SELECT ((time + :off) / :b) * :b - :off, avg(value), min(value), max(value),"
            " count(*) FROM readings WHERE device_id = :d AND sensor = :s"
            " AND time >= :since AND time < :until GROUP BY 1 ORDER BY 1",
            {"off": utc_offset_ms, "b": bucket_ms, "d": device_id, "s": sensor,
             "since": since_ms, "until": until_ms})
        newest = self._all(
            "SELECT unit, quality FROM readings WHERE device_id = ? AND sensor = ?"
            " ORDER BY time DESC LIMIT 1", (device_id, sensor))
        return _history(rows, newest)

    def registered_towns(self) -> list[str]:
        rows = self._all("SELECT DISTINCT town FROM devices WHERE revoked_at IS NULL")
        return sorted(town for (town,) in rows)

    def receiving(self) -> dict:
        """When the newest message arrived, and how many devices last said "online"."""
        newest = [row[0] for table in DATA_TABLES for row in self._all(
            f"SELECT received_at FROM {table} ORDER BY time DESC LIMIT 1")]
        ((online,),) = self._all(ONLINE_DEVICES)
        return {"newest_ms": max(newest, default=None), "online": online}

    def ping(self) -> None:
        self._all("SELECT 1")


def _history(rows: list[tuple], newest: list[tuple]) -> dict:
    unit, quality = newest[0] if newest else (None, None)
    points = [{"t": int(t), "avg": avg, "min": low, "max": high, "count": n}
              for t, avg, low, high, n in rows]
    return {"unit": unit, "quality": quality, "points": points}
