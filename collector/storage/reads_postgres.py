"""What the public API reads from PostgreSQL + TimescaleDB (mixed into PostgresStorage).

One statement per question, whatever the number of devices: LATERAL joins
probe the (device_id, time) and (device_id, sensor, time) indexes, and the
time bound lets TimescaleDB skip old chunks.
"""

from collections.abc import Callable
from typing import Any

from collector.storage.base import Device
from collector.storage.reads_sqlite import DATA_TABLES, ONLINE_DEVICES, _history

DEVICE_COLUMNS = "id, town, name, kind, public, label, settings"


def ms(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000)::bigint"


def at(param: str) -> str:
    return f"to_timestamp({param} / 1000.0)"


LATEST_POSITIONS = f"""
SELECT d.id, {ms('p.time')}, p.lat, p.lon, p.speed, p.heading
FROM unnest(%(ids)s::int[]) AS d(id)
CROSS JOIN LATERAL (
    SELECT time, lat, lon, speed, heading FROM positions
    WHERE device_id = d.id AND time > {at('%(since)s')}
    ORDER BY time DESC LIMIT 1
) AS p
"""

# Each sensor of each device once (a loose index scan), then its newest reading.
LATEST_READINGS = f"""
WITH RECURSIVE s(device_id, sensor) AS (
    SELECT d.id, (SELECT min(sensor) FROM readings
                  WHERE device_id = d.id AND time > {at('%(since)s')})
    FROM unnest(%(ids)s::int[]) AS d(id)
    UNION ALL
    SELECT s.device_id, (SELECT min(sensor) FROM readings
                         WHERE device_id = s.device_id AND sensor > s.sensor
                         AND time > {at('%(since)s')})
    FROM s WHERE s.sensor IS NOT NULL
)
SELECT s.device_id, s.sensor, r.value, r.unit, r.quality, {ms('r.time')}
FROM s CROSS JOIN LATERAL (
    SELECT time, value, unit, quality FROM readings
    WHERE device_id = s.device_id AND sensor = s.sensor AND time > {at('%(since)s')}
    ORDER BY time DESC LIMIT 1
) AS r
WHERE s.sensor IS NOT NULL
ORDER BY s.device_id, s.sensor
"""

HISTORY = f"""
SELECT {ms("time_bucket(make_interval(secs => %(b)s / 1000.0), time, %(zone)s)")},
       avg(value), min(value), max(value), count(*)
FROM readings
WHERE device_id = %(d)s AND sensor = %(s)s
  AND time >= {at('%(since)s')} AND time < {at('%(until)s')}
GROUP BY 1 ORDER BY 1
"""


class PostgresReads:
    _run: Callable[[Callable[[Any], Any]], Any]

    def _all(self, query: str, args: dict | tuple = ()) -> list[tuple]:
        return self._run(lambda conn: conn.execute(query, args).fetchall())

    def public_devices(self, town: str | None = None) -> list[Device]:
        where = "public AND revoked_at IS NULL" + (" AND town = %s" if town else "")
        rows = self._all(f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where} ORDER BY town, name",
                         (town,) if town else ())
        return [Device(*row) for row in rows]

    def latest_positions(self, device_ids: list[int], since_ms: int) -> dict[int, dict]:
        rows = self._all(LATEST_POSITIONS, {"ids": device_ids, "since": since_ms})
        return {d: {"t": t, "lat": lat, "lon": lon, "speed": speed, "heading": heading}
                for d, t, lat, lon, speed, heading in rows}

    def latest_readings(self, device_ids: list[int], since_ms: int) -> dict[int, list[dict]]:
        latest: dict[int, list[dict]] = {}
        for d, sensor, value, unit, quality, t in self._all(
                LATEST_READINGS, {"ids": device_ids, "since": since_ms}):
            latest.setdefault(d, []).append(
                {"sensor": sensor, "value": value, "unit": unit, "quality": quality, "t": t})
        return latest

    def track(self, device_id: int, since_ms: int, limit: int = 5000) -> list[dict]:
        rows = self._all(
            f"SELECT {ms('time')}, lat, lon FROM positions WHERE device_id = %s"
            f" AND time > {at('%s')} ORDER BY time LIMIT %s", (device_id, since_ms, limit))
        return [{"t": t, "lat": lat, "lon": lon} for t, lat, lon in rows]

    def reading_history(self, device_id: int, sensor: str, since_ms: int, until_ms: int,
                        bucket_ms: int, zone: str) -> dict:
        rows = self._all(HISTORY, {"b": bucket_ms, "zone": zone, "d": device_id, "s": sensor,
                                   "since": since_ms, "until": until_ms})
        newest = self._all(
            "SELECT unit, quality FROM readings WHERE device_id = %s AND sensor = %s"
            " ORDER BY time DESC LIMIT 1", (device_id, sensor))
        return _history(rows, newest)

    def registered_towns(self) -> list[str]:
        rows = self._all("SELECT DISTINCT town FROM devices WHERE revoked_at IS NULL")
        return sorted(town for (town,) in rows)

    def receiving(self) -> dict:
        """When the newest message arrived, and how many devices last said "online"."""
        newest = [row[0] for table in DATA_TABLES for row in self._all(
            f"SELECT {ms('received_at')} FROM {table} ORDER BY time DESC LIMIT 1")]
        ((online,),) = self._all(ONLINE_DEVICES)
        return {"newest_ms": max(newest, default=None), "online": online}

    def ping(self) -> None:
        self._all("SELECT 1")
