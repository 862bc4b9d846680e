"""The four machikit dashboards, the data source and the folder, as Grafana JSON models.

`machikit grafana push` sends all_dashboards() and datasource_model() to a running
Grafana; `write_json()` writes the files that dashboards/json/ holds for Grafana's
file provisioning. Output is deterministic (sorted keys, fixed uids, no timestamps)
so a test can regenerate it and compare with the checked-in files.
"""

import json
from pathlib import Path
from typing import Any

from machikit.grafana import queries as q
from machikit.grafana.panels import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    bars,
    dashboard,
    device_variable,
    panel,
)
from machikit.texts import TEXTS

FOLDER_UID = "machikit"
FOLDER_TITLE = " / ".join(TEXTS["dash_folder"])  # まちキット / machikit
DATASOURCE_NAME = "machikit TimescaleDB"
POSTGRES_VERSION = 1600  # Grafana's newest choice; only used to pick SQL features
REPO_JSON_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "json"


def _title(key: str) -> str:
    ja, en = TEXTS[key]
    return f"{ja} / {en}"


def fleet() -> dict[str, Any]:
    vehicle = device_variable("vehicle", "車両 / Vehicle", q.VEHICLE_KINDS)
    panels = [
        panel("stat", "運行中 / Online now", q.VEHICLES_ONLINE, "table", (6, 8),
              f"最新の状態がonlineで、{q.ONLINE_MINUTES}分以内に受信した車両 / latest status "
              f"online and heard from in the last {q.ONLINE_MINUTES} minutes",
              colorMode="value", graphMode="none", reduceOptions={"calcs": ["lastNotNull"]}),
        panel("table", "最終受信 / Last seen", q.VEHICLES_LAST_SEEN, "table", (18, 8)),
        panel("timeseries", "位置の受信数（毎分） / Positions per minute",
              q.POSITIONS_PER_MINUTE, "time_series", (12, 8), unit="short"),
        panel("timeseries", "GPSの品質 / GPS quality (satellites, HDOP)", q.GPS_QUALITY,
              "time_series", (12, 8), "HDOP: 小さいほど良い / lower is better"),
        panel("geomap", "最新の位置 / Latest positions", q.LATEST_POSITIONS, "table", (24, 14),
              view={"id": "fit", "lat": 42.3, "lon": 140.9, "zoom": 12},
              layers=[{"type": "markers", "name": "vehicles", "tooltip": True,
                       "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                       "config": {"showLegend": False}}],
              basemap={"type": "osm-standard", "name": "OpenStreetMap"}),
    ]
    return dashboard("machikit-fleet", _title("dash_fleet"), _title("dash_fleet_about"),
                     ["fleet"], [vehicle], panels, time_from="now-6h")


def snow() -> dict[str, Any]:
    gauge = device_variable("gauge", "積雪計 / Gauge", ("snow_gauge",))
    panels = [
        panel("timeseries", "積雪深（参考値） / Snow depth (reference)",
              q.reading_series("snow_depth", "gauge"), "time_series", (24, 9), unit="lengthcm"),
        bars("1時間の降雪量（参考値） / Hourly snowfall (reference)", q.SNOWFALL_HOURLY, (24, 9),
             f"1時間の中央値が{q.SNOW_RISE_CM} cmを超えて増えた分だけ / only hourly median rises "
             f"above {q.SNOW_RISE_CM} cm", unit="lengthcm"),
        panel("timeseries", "気温（参考値） / Air temperature (reference)",
              q.reading_series("air_temp", "gauge"), "time_series", (12, 8), unit="celsius"),
        panel("timeseries", "電池 / Battery", q.reading_series("battery", "gauge"),
              "time_series", (12, 8), unit="volt"),
    ]
    return dashboard("machikit-snow", _title("dash_snow"), _title("dash_snow_about"),
                     ["snow", "参考値"], [gauge], panels, time_from="now-3d")


def printer() -> dict[str, Any]:
    buzzer = device_variable("printer", "プリンター / Printer", ("printer_buzzer",))
    panels = [
        bars("1日の警報数 / Alarms per day", q.ALARMS_PER_DAY, (12, 8), unit="short"),
        panel("timeseries", "置かれていた時間（分） / Minutes paper was left",
              q.LEFT_MINUTES_PER_DAY, "time_series", (12, 8), unit="m"),
        panel("barchart", "置かれていた時間の分布 / How long paper was left",
              q.LEFT_DISTRIBUTION, "table", (12, 8), xField="left_for"),
        panel("barchart", "時間帯（日本時間） / By hour of day (JST)", q.BY_HOUR_OF_DAY,
              "table", (12, 8), xField="hour"),
    ]
    return dashboard("machikit-printer", _title("dash_printer"), _title("dash_printer_about"),
                     ["printer"], [buzzer], panels, time_from="now-30d")


def health() -> dict[str, Any]:
    device = device_variable("device", "機器 / Device", None)
    panels = [
        panel("table", "最終受信 / Last seen", q.DEVICES_LAST_SEEN, "table", (24, 9)),
        panel("timeseries", "送信待ちと削除件数 / Buffered and dropped",
              q.status_series("buffered", "dropped"), "time_series", (12, 8),
              "buffered: 機器に溜まった未送信件数 / waiting in the device; dropped: "
              "バッファが一杯で消した件数 / deleted unsent (a counter)"),
        bars("再起動（1日） / Reboots per day", q.BOOTS_PER_DAY, (12, 8), unit="short"),
        panel("timeseries", "電波強度 / Signal (RSSI)", q.status_series("rssi"),
              "time_series", (12, 8), unit="dBm"),
        panel("table", "受け付けなかったメッセージ / Quarantined by reason",
              q.QUARANTINE_BY_REASON, "table", (12, 8)),
    ]
    return dashboard("machikit-health", _title("dash_health"), _title("dash_health_about"),
                     ["health"], [device], panels, time_from="now-7d")


def all_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model (the `dashboard` object of POST /api/dashboards/db)."""
    return {board["uid"]: board for board in (fleet(), snow(), printer(), health())}


def to_json(model: dict[str, Any]) -> str:
    """The reproducible text of one model: sorted keys, UTF-8 kept readable."""
    return json.dumps(model, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_json(out_dir: Path) -> list[Path]:
    """Write <uid>.json for every dashboard; returns the paths written, sorted."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in sorted(all_dashboards().items()):
        path = out_dir / f"{uid}.json"
        path.write_text(to_json(model), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def datasource_model(password: str, host: str = "localhost:5432", database: str = "machikit",
                     user: str = "machikit_grafana_login",
                     sslmode: str = "require") -> dict[str, Any]:
    """The data source as POST /api/datasources takes it (PUT /api/datasources/uid/<uid>
    to update). The password goes to secureJsonData: Grafana encrypts it and never
    returns it."""
    return {
        "name": DATASOURCE_NAME,
        "uid": DATASOURCE_UID,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": host,
        "user": user,
        "isDefault": False,
        "jsonData": {
            "database": database,
            "sslmode": sslmode,
            "postgresVersion": POSTGRES_VERSION,
            "timescaledb": True,  # $__timeGroup becomes time_bucket()
        },
        "secureJsonData": {"password": password},
    }


def folder_model() -> dict[str, str]:
    """The folder as POST /api/folders takes it."""
    return {"uid": FOLDER_UID, "title": FOLDER_TITLE}
