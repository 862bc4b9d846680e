"""The soak's numbers, read from the database and the collector's counters:
what was stored, how late, and how long each fault held the data up."""

import math
import time

import psycopg

from collector.bench.hist import Histogram
from collector.bench.measure import commit_latency

DATA = ("positions", "readings")
RECONNECT_FOR_S = 120.0


class Db:
    """The bench's own connection. PostgreSQL is shared with other test runs,
    which may restart it: reconnect, and count it (the numbers were disturbed)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection | None = None
        self.reconnects = 0

    def row(self, sql: str, params: tuple = ()) -> tuple | None:
        deadline = time.monotonic() + RECONNECT_FOR_S
        while True:
            try:
                conn = self.conn or psycopg.connect(self.url, autocommit=True)
                self.conn = conn
                return conn.execute(sql, params).fetchone()
            except psycopg.OperationalError:
                if self.conn is not None:
                    self.reconnects += 1
                    self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def stored_counts(db: Db, town: str) -> dict:
    """Rows of the town, and rows that would be a second copy of one message
    (same device and seq): the unique key makes that impossible, this checks it."""
    found = {"positions": 0, "readings": 0, "duplicates": 0}
    for table in DATA:
        row = db.row(
            f"SELECT count(*), count(*) - count(DISTINCT (x.device_id, x.seq)) FROM {table} x"
            " JOIN devices d ON d.id = x.device_id WHERE d.town = %s", (town,))
        assert row is not None
        found[table], found["duplicates"] = int(row[0]), found["duplicates"] + int(row[1])
    row = db.row("SELECT count(*) FROM quarantine")
    found["quarantined"] = int(row[0]) if row else 0
    found["stored"] = found["positions"] + found["readings"]
    return found


def received_delay(db: Db, start: float, end: float) -> dict:
    """publish -> received by the collector, exact over every row published in the window."""
    row = db.row(
        "SELECT count(*), percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY d), max(d)"
        " FROM (SELECT extract(epoch FROM received_at - time) * 1000 AS d FROM positions"
        " WHERE time >= to_timestamp(%s) AND time < to_timestamp(%s)"
        " UNION ALL SELECT extract(epoch FROM received_at - time) * 1000 FROM readings"
        " WHERE time >= to_timestamp(%s) AND time < to_timestamp(%s)) x",
        (start, end, start, end))
    if not row or not row[0]:
        return {"count": 0}
    p50, p99 = row[1]
    return {"count": int(row[0]), "p50": _ms(p50), "p99": _ms(p99), "max": _ms(row[2])}


def stored_delay(stats, start: float, end: float) -> dict:
    """publish -> committed, from the collector's per-second counters (every
    restarted collector included; a retained copy seen twice counts once)."""
    snaps = {s["time_ms"]: s for found in stats.snapshots.values() for s in found}
    inside = [s for t, s in sorted(snaps.items()) if start < t / 1000 <= end + 1]
    found = commit_latency(inside, start)
    if not found:
        return {"count": 0}
    over = sum(s["age_ms"].get("hist", {}).get("inf", 0) for s in inside if s.get("age_ms"))
    run_p99 = found.get("p99_run")
    return {"count": found["count"], "p50": found["p50"],
            "p99": None if run_p99 is None or math.isinf(run_p99) else run_p99,
            "max": found["max"], "over_5000": over,
            "source": "collector stats, p99 = upper bound of its histogram bucket"}


def collector_db_errors(stats) -> int:
    """Database errors the collector met, over all its processes (the counter
    starts again after a restart). On a shared test bed, someone else's test
    restarting PostgreSQL shows up here: the delays are then not the soak's own."""
    snaps = {s["time_ms"]: s for found in stats.snapshots.values() for s in found}
    total = last = 0
    for _, snap in sorted(snaps.items()):
        now = snap.get("db_errors") or 0
        total += now - last if now >= last else now
        last = now
    return total


def live_delay(probe, start: float, end: float) -> dict:
    """publish -> seen by one map viewer on the live stream."""
    hist = Histogram()
    for delay in probe.between(start * 1000, end * 1000):
        hist.add(delay)
    found = hist.summary()
    return {k: found[k] for k in ("count", "p50", "p99", "max") if k in found}


def delays(db: Db, stats, probe, windows: dict) -> dict:
    """Each delay in each window, and the whole run's p99 over the first minute's."""
    found: dict = {name: {"received": received_delay(db, *span),
                    "stored": stored_delay(stats, *span),
                    "live": live_delay(probe, *span)}
             for name, span in windows.items()}
    found["ratio_p99_run_to_baseline"] = {
        kind: _ratio(found["run"][kind].get("p99"), found["baseline"][kind].get("p99"))
        for kind in ("received", "stored", "live")}
    return found


def event_catch_up(db: Db, event: dict) -> float | None:
    """From the fault until the last message published before the part came back
    was stored: how long the backlog took."""
    row = db.row(
        "SELECT extract(epoch FROM max(received_at)) FROM positions"
        " WHERE time > to_timestamp(%s) AND time < to_timestamp(%s)",
        (event["began"] - 600, event["back"]))
    if not row or row[0] is None:
        return None
    return round(float(row[0]) - event["began"], 2)


def status_5xx(polled: dict | None, ramp: dict, probed: dict) -> int:
    """Answers 500..599 anywhere: pollers, viewers connecting, the probe."""
    found = 0
    for status, count in (polled or {}).get("statuses", {}).items():
        found += count if str(status).startswith("5") else 0
    for failures in (ramp.get("failed", {}), probed.get("errors", {})):
        found += sum(n for reason, n in failures.items() if reason.startswith("HTTP 5"))
    return found


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value is not None and base else None


def _ms(value) -> float | None:
    return None if value is None else round(float(value), 1)
