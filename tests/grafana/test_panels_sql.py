"""Every panel's SQL, expanded as Grafana expands it, on the real TimescaleDB (issue 7)."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from collector.storage import open_storage
from machikit.grafana.dashboards import all_dashboards
from machikit.grafana.macros import Context, expand
from machikit.grafana.queries import SNOW_RISE_CM
from tests.collector.helpers import fresh_database
from tests.grafana.seed import (
    ALARMS_BY_DAYS_AGO,
    BUS_POSITIONS,
    JST,
    LEFT_SECONDS,
    SNOW_BARS,
    TOWN,
    Seeded,
    seed,
)

# Table panels: the columns Grafana's field overrides and readers rely on.
TABLE_COLUMNS = {
    "Online now": ["online"],
    "Last seen": ["name", "label", "kind"],
    "Latest positions": ["name", "label", "time", "lat", "lon", "speed_kmh"],
    "How long paper was left": ["left_for", "papers"],
    "By hour of day (JST)": ["hour", "印刷 / arrived", "取り忘れ / alarms"],
    "Quarantined by reason": ["reason", "messages", "last_received", "last_topic"],
}
Result = tuple[list[str], list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def seeded_db(database_url: str) -> Iterator[tuple[str, Seeded]]:
    with fresh_database(database_url) as url:
        storage = open_storage(url)
        storage.migrate()
        seeded = seed(storage)
        storage.close()
        yield url, seeded


def _context(seeded: Seeded, **variables: str | list[str]) -> Context:
    return Context(start=seeded.now - timedelta(days=5), end=seeded.now + timedelta(minutes=1),
                   interval=timedelta(minutes=5), variables={"town": TOWN, **variables})


def _run(conn: psycopg.Connection, sql: str, ctx: Context) -> Result:
    cursor = conn.execute(expand(sql, ctx).encode())  # bytes: no %-placeholders for psycopg
    return [c.name for c in cursor.description or []], cursor.fetchall()


def _board_context(conn: psycopg.Connection, board: dict, seeded: Seeded) -> Context:
    """Fill the dashboard's variables by running their own queries, as Grafana does."""
    ctx = _context(seeded)
    for variable in board["templating"]["list"][1:]:
        names, rows = _run(conn, variable["query"], ctx)
        assert names == ["__text", "__value"], variable["name"]
        ctx.variables[variable["name"]] = [row[1] for row in rows]
    return ctx


def _panels() -> list[tuple[str, dict]]:
    return [(uid, p) for uid, board in sorted(all_dashboards().items()) for p in board["panels"]]


def _results(url: str, seeded: Seeded, uid: str) -> dict[str, Result]:
    """English title -> result, for every panel of one dashboard."""
    board = all_dashboards()[uid]
    with psycopg.connect(url) as conn:
        ctx = _board_context(conn, board, seeded)
        return {p["title"].split(" / ")[-1]: _run(conn, p["targets"][0]["rawSql"], ctx)
                for p in board["panels"]}


def _check_time_series(title: str, names: list[str], rows: list[tuple]) -> None:
    assert names[0] == "time", title
    assert rows, f"{title}: the seeded data gives no rows"
    times = [row[0] for row in rows]
    assert all(isinstance(t, datetime) for t in times) and times == sorted(times), title
    for row in rows:
        values = [v for name, v in zip(names, row, strict=True) if name not in ("time", "metric")]
        assert values and all(isinstance(v, int | float | Decimal) or v is None
                              for v in values), (title, row)


@pytest.mark.services
@pytest.mark.parametrize(("uid", "panel"), _panels(),
                         ids=[f"{u}:{p['id']}" for u, p in _panels()])
def test_every_panel_query_runs_and_has_its_shape(
        seeded_db: tuple[str, Seeded], uid: str, panel: dict) -> None:
    url, seeded = seeded_db
    target = panel["targets"][0]
    with psycopg.connect(url) as conn:
        ctx = _board_context(conn, all_dashboards()[uid], seeded)
        names, rows = _run(conn, target["rawSql"], ctx)
    title = panel["title"].split(" / ")[-1]
    if target["format"] == "time_series":
        _check_time_series(title, names, rows)
    else:
        assert names[:len(TABLE_COLUMNS[title])] == TABLE_COLUMNS[title], title
        assert rows, f"{title}: the seeded data gives no rows"


@pytest.mark.services
def test_fleet_numbers(seeded_db: tuple[str, Seeded]) -> None:
    results = _results(*seeded_db, "machikit-fleet")
    assert results["Online now"][1] == [(2,)]  # bus-01, bus-02; the truck went offline
    _, rows = results["Latest positions"]
    assert sorted(r[0] for r in rows) == ["bus-01", "bus-02", "gt-01"]  # not the other town's
    _, per_minute = results["Positions per minute"]
    bus_01 = [r[2] for r in per_minute if r[1] == "bus-01"]
    assert sum(bus_01) == BUS_POSITIONS and max(bus_01) == 2


@pytest.mark.services
def test_hourly_snowfall_obeys_the_noise_rule(seeded_db: tuple[str, Seeded]) -> None:
    _, rows = _results(*seeded_db, "machikit-snow")["Hourly snowfall (reference)"]
    bars = [(gauge, cm) for _, gauge, cm in rows if cm]
    assert bars == [("snow-01", SNOW_BARS[0]), ("snow-01", SNOW_BARS[1])]
    assert all(cm == 0 or cm > SNOW_RISE_CM for _, _, cm in rows)


@pytest.mark.services
def test_printer_numbers(seeded_db: tuple[str, Seeded]) -> None:
    url, seeded = seeded_db
    results = _results(url, seeded, "machikit-printer")
    today = seeded.now.astimezone(JST).date()
    per_day = {(today - r[0].astimezone(JST).date()).days: r[2]
               for r in results["Alarms per day"][1]}
    assert per_day == ALARMS_BY_DAYS_AGO
    assert all(r[0].astimezone(JST).hour == 0 for r in results["Alarms per day"][1])
    by_hour = {r[0]: r[1:] for r in results["By hour of day (JST)"][1]}
    alarms = sum(ALARMS_BY_DAYS_AGO.values())
    assert len(by_hour) == 24 and by_hour["09時"] == (alarms, 0) and by_hour["10時"] == (0, alarms)
    assert [r[1] for r in results["How long paper was left"][1]] == [1, 2, 1, 1, 1]
    assert sum(r[1] for r in results["How long paper was left"][1]) == len(LEFT_SECONDS)


@pytest.mark.services
def test_health_numbers(seeded_db: tuple[str, Seeded]) -> None:
    results = _results(*seeded_db, "machikit-health")
    boots = {r[1]: 0 for r in results["Reboots per day"][1]}
    for _, cause, count in results["Reboots per day"][1]:
        boots[cause] += count
    assert boots == {"power_on": 5, "watchdog": 1}  # 3 vehicles' + 2 gauges' first boots
    reasons = {r[0]: r[1] for r in results["Quarantined by reason"][1]}
    assert reasons == {"bad_json": 3, "unknown_device": 1, "bad_topic": 1}
    _, rows = results["Last seen"]
    assert {r[0] for r in rows} == {"bus-01", "bus-02", "gt-01", "snow-01", "snow-02",
                                    "printer-01"}
