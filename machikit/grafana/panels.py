"""Small builders for the parts of Grafana's dashboard JSON model machikit uses.

Plain dictionaries rather than a dashboards-as-code library: the model is small,
the output is what reviewers read (dashboards/json/), and `machikit grafana push`
needs no extra package. Every panel and variable uses the same data source uid,
so a town's Grafana only needs the one provisioned data source.
"""

from typing import Any

DATASOURCE_UID = "machikit-timescaledb"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
GRID_WIDTH = 24

Panel = dict[str, Any]


def target(sql: str, fmt: str = "time_series", ref: str = "A") -> dict[str, Any]:
    """One raw-SQL query. fmt: 'time_series' (a time column) or 'table'."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": sql.strip(),
        "refId": ref,
    }


def panel(kind: str, title: str, sql: str, fmt: str, size: tuple[int, int],
          description: str = "", unit: str = "", **options: Any) -> Panel:
    """A panel of type kind (timeseries, stat, table, geomap, barchart) with one query.

    size is (width, height) in grid units; layout() places panels left to right.
    """
    defaults: dict[str, Any] = {"unit": unit} if unit else {}
    if "custom" in options:
        defaults["custom"] = options.pop("custom")
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(sql, fmt)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "gridPos": {"w": size[0], "h": size[1], "x": 0, "y": 0},
    }


def bars(title: str, sql: str, size: tuple[int, int], description: str = "",
         unit: str = "") -> Panel:
    """A time series drawn as bars (daily or hourly counts), like a 降雪量 chart."""
    custom = {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1, "stacking":
              {"mode": "normal", "group": "A"}}
    return panel("timeseries", title, sql, "time_series", size, description, unit,
                 custom=custom)


def layout(panels: list[Panel]) -> list[Panel]:
    """Stable ids and grid positions: rows fill left to right, 24 units wide."""
    x = y = row_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        if x + grid["w"] > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        item["id"] = number
    return panels


def query_variable(name: str, label: str, sql: str, multi: bool = False) -> dict[str, Any]:
    """A template variable filled by SQL. multi: several values and 'All' (quoted list)."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": sql,
        "query": sql,
        "refresh": 1,  # on dashboard load: new devices appear without editing
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
        "hide": 0,
    }


def town_variable() -> dict[str, Any]:
    return query_variable("town", "町 / Town", "SELECT DISTINCT town FROM devices ORDER BY 1")


def device_variable(name: str, label: str, kinds: tuple[str, ...] | None) -> dict[str, Any]:
    """Devices of the chosen town (of some kinds), shown by label, used by name."""
    where = "town = '$town' AND revoked_at IS NULL"
    if kinds:
        where += " AND kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"
    sql = (f"SELECT coalesce(label, name) AS __text, name AS __value FROM devices"
           f" WHERE {where} ORDER BY name")
    return query_variable(name, label, sql, multi=True)


def dashboard(uid: str, title: str, description: str, tags: list[str],
              variables: list[dict[str, Any]], panels: list[Panel],
              time_from: str = "now-24h") -> dict[str, Any]:
    """A whole dashboard; no id or version, so Grafana assigns its own on import."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["machikit", *tags],
        "timezone": "Asia/Tokyo",  # staff read times in JST whatever the browser says
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": [town_variable(), *variables]},
        "panels": layout(panels),
        "annotations": {"list": []},
        "links": [],
    }
