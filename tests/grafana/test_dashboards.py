"""The dashboard models, provisioning files and checked-in JSON (no database needed)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from machikit.grafana.dashboards import (
    FOLDER_TITLE,
    FOLDER_UID,
    all_dashboards,
    datasource_model,
    to_json,
    write_json,
)
from machikit.grafana.macros import Context, expand
from machikit.grafana.panels import DATASOURCE_TYPE, DATASOURCE_UID
from tests.conftest import REPO

DASHBOARDS = REPO / "dashboards"
START = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


def test_checked_in_json_is_what_the_code_generates(tmp_path: Path) -> None:
    written = write_json(tmp_path)
    checked_in = sorted(p.name for p in (DASHBOARDS / "json").glob("*.json"))
    assert [p.name for p in written] == checked_in
    for path in written:
        assert path.read_text("utf-8") == (DASHBOARDS / "json" / path.name).read_text("utf-8"), (
            f"{path.name} is stale: run python -c 'from machikit.grafana.dashboards import "
            "write_json, REPO_JSON_DIR; write_json(REPO_JSON_DIR)'")
    assert to_json(all_dashboards()["machikit-snow"]) == to_json(all_dashboards()["machikit-snow"])


def test_every_panel_and_variable_uses_the_machikit_datasource() -> None:
    for uid, board in all_dashboards().items():
        assert board["templating"]["list"][0]["name"] == "town", uid
        assert "$town" in board["templating"]["list"][1]["query"], uid
        for item in board["panels"] + board["templating"]["list"]:
            assert item["datasource"]["uid"] == DATASOURCE_UID, (uid, item.get("title"))
        for panel in board["panels"]:
            assert [t["datasource"]["uid"] for t in panel["targets"]] == [DATASOURCE_UID]
            assert "'$town'" in panel["targets"][0]["rawSql"], (uid, panel["title"])
        assert [p["id"] for p in board["panels"]] == list(range(1, len(board["panels"]) + 1))
    assert "参考値" in all_dashboards()["machikit-snow"]["title"]


def test_datasource_provisioning_yaml() -> None:
    text = (DASHBOARDS / "provisioning/datasources/machikit.yaml").read_text("utf-8")
    source = yaml.safe_load(text)["datasources"][0]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert source["jsonData"]["timescaledb"] is True
    assert {"postgresVersion", "sslmode", "database"} <= set(source["jsonData"])
    assert source["url"] == "${MACHIKIT_GRAFANA_DB_HOST}"
    assert source["secureJsonData"]["password"] == "${MACHIKIT_GRAFANA_DB_PASSWORD}"
    api = datasource_model("secret")
    assert (api["uid"], api["type"], api["secureJsonData"]) == (
        DATASOURCE_UID, DATASOURCE_TYPE, {"password": "secret"})
    assert api["jsonData"]["timescaledb"] is True


def test_dashboard_provider_yaml() -> None:
    text = (DASHBOARDS / "provisioning/dashboards/machikit.yaml").read_text("utf-8")
    provider = yaml.safe_load(text)["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/machikit"
    assert (provider["folder"], provider["folderUid"]) == (FOLDER_TITLE, FOLDER_UID)
    for path in (DASHBOARDS / "json").glob("*.json"):
        assert json.loads(path.read_text("utf-8"))["uid"] == path.stem


def test_macros_expand_as_grafana_documents() -> None:
    ctx = Context(START, START + timedelta(hours=6), timedelta(seconds=20),
                  {"town": "o'hara", "device": ["bus-01", "it's"]})
    sql = ("SELECT $__timeGroupAlias(time, $__interval), $__timeGroup(time, '1h') x "
           "WHERE $__timeFilter(time) AND town = '$town' AND name IN (${device}) "
           "AND $__timeFrom() < $__timeTo() AND ms = $__interval_ms")
    assert expand(sql, ctx) == (
        "SELECT time_bucket('20.000s',time) AS \"time\", time_bucket('3600.000s',time) x "
        "WHERE time BETWEEN '2026-01-10T00:00:00Z' AND '2026-01-10T06:00:00Z' "
        "AND town = 'o''hara' AND name IN ('bus-01','it''s') "
        "AND '2026-01-10T00:00:00Z' < '2026-01-10T06:00:00Z' AND ms = 20000")
    ctx.timescaledb = False
    assert expand("$__timeGroupAlias(t, '5m')", ctx) == (
        'floor(extract(epoch from t)/300)*300 AS "time"')
    assert expand("$__unixEpochFilter(t)", ctx) == "t >= 1768003200 AND t <= 1768024800"
