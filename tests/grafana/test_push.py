"""`machikit grafana push` against a local emulation of Grafana's documented HTTP API,
and `machikit grafana export`.

The call sequence is checked with a small STAND-IN dashboards module (two tiny dashboards), so
these tests pin the push logic, not the dashboards' content; the `real_content` tests run the
same push and export with machikit/grafana/dashboards.py when it is importable.
"""

import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grafana_client")

from machikit.cli import main
from machikit.grafana import cli as grafana_cli
from tests.grafana.fake_grafana import FakeGrafana

TOKEN = "glsa_test-token"
PASSWORD = "pw-for-grafana-only"
PUSH = ["grafana", "push", "--db-host", "db.town.example:5432", "--db-name", "machikit_town",
        "--db-user", "grafana_reader", "--db-sslmode", "verify-full"]


# --- stand-in for machikit/grafana/dashboards.py (the dashboards engineer's module) -----------

def _stand_in_module() -> types.ModuleType:
    module = types.ModuleType("machikit.grafana.dashboards")
    boards = {uid: {"uid": uid, "title": title, "panels": [], "schemaVersion": 39}
              for uid, title in (("stand-in-fleet", "STAND-IN 車両"),
                                 ("stand-in-snow", "STAND-IN 積雪"))}

    def datasource_model(password: str, host: str = "localhost:5432",
                         database: str = "machikit", user: str = "machikit_grafana_login",
                         sslmode: str = "require") -> dict[str, Any]:
        return {"uid": "machikit-timescaledb", "name": "machikit TimescaleDB",
                "type": "grafana-postgresql-datasource", "access": "proxy",
                "url": host, "user": user,
                "jsonData": {"database": database, "sslmode": sslmode,
                             "timescaledb": True, "postgresVersion": 1600},
                "secureJsonData": {"password": password}}

    def write_json(out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{uid}.json" for uid in boards]
        for path, board in zip(paths, boards.values(), strict=True):
            path.write_text(json.dumps(board, ensure_ascii=False, indent=2))
        return paths

    module.__dict__.update(FOLDER_UID="machikit", FOLDER_TITLE="まちキット / machikit",
                           all_dashboards=lambda: boards, datasource_model=datasource_model,
                           write_json=write_json)
    return module


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = _stand_in_module()
    monkeypatch.setitem(sys.modules, "machikit.grafana.dashboards", module)
    return module


@pytest.fixture
def grafana(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("MACHIKIT_GRAFANA_DB_PASSWORD", PASSWORD)
    with FakeGrafana(TOKEN) as fake:
        yield fake


def _push(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main([*PUSH, "--url", url, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _routes(fake: FakeGrafana) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _body in fake.calls]


# --- push ------------------------------------------------------------------------------------

def test_first_push_creates_folder_datasource_and_dashboards(grafana, stand_in, capsys):
    code, out, err = _push(grafana.url, capsys)
    assert (code, err) == (0, "")
    assert _routes(grafana) == [
        ("GET", "/api/health"),
        ("GET", "/api/folders/machikit"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/machikit-timescaledb"),
        ("POST", "/api/datasources"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
    ]
    assert grafana.calls[2][2] == {"uid": "machikit", "title": "まちキット / machikit"}
    datasource = grafana.calls[4][2]
    assert datasource["jsonData"]["timescaledb"] is True
    assert datasource["url"] == "db.town.example:5432"
    assert datasource["user"] == "grafana_reader"
    assert datasource["jsonData"]["database"] == "machikit_town"
    assert datasource["jsonData"]["sslmode"] == "verify-full"
    assert datasource["secureJsonData"] == {"password": PASSWORD}
    assert PASSWORD not in json.dumps({k: v for k, v in datasource.items()
                                       if k != "secureJsonData"})
    for (_m, _p, body), uid in zip(grafana.calls[5:], stand_in.all_dashboards(), strict=True):
        assert body["dashboard"]["uid"] == uid and body["dashboard"]["id"] is None
        assert (body["folderUid"], body["overwrite"]) == ("machikit", True)
        assert body["message"] == "machikit grafana push"
    lines = out.splitlines()
    assert len(lines) == 6 and all(" / " in line for line in lines)  # one line per step


def test_second_push_updates_in_place(grafana, stand_in, capsys):
    assert _push(grafana.url, capsys)[0] == 0
    grafana.calls.clear()
    code, _out, err = _push(grafana.url, capsys)
    assert (code, err) == (0, "")
    assert _routes(grafana) == [
        ("GET", "/api/health"),
        ("GET", "/api/folders/machikit"),
        ("GET", "/api/datasources/uid/machikit-timescaledb"),
        ("PUT", "/api/datasources/uid/machikit-timescaledb"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
    ]
    assert grafana.calls[3][2]["secureJsonData"] == {"password": PASSWORD}
    assert [body["dashboard"]["uid"] for _m, _p, body in grafana.calls[4:]] == list(
        stand_in.all_dashboards())
    # Nothing exists twice.
    assert (len(grafana.folders), len(grafana.datasources)) == (1, 1)
    assert {uid: d["version"] for uid, d in grafana.dashboards.items()} == {
        "stand-in-fleet": 2, "stand-in-snow": 2}


def test_bad_token_is_one_line(grafana, stand_in, capsys, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong")
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "401" in err and "GRAFANA_TOKEN" in err
    assert grafana.calls[-1][:2] == ("GET", "/api/folders/machikit")  # stopped at once


def test_no_permission_is_one_line(grafana, stand_in, capsys):
    grafana.forbidden.add(("POST", "/api/datasources"))
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "403" in err
    assert "Traceback" not in err


def test_grafana_down_is_one_line(grafana, stand_in, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = _push(f"http://127.0.0.1:{port}", capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "Cannot reach Grafana" in err
    assert "Connection refused" in err and "HTTPConnectionPool" not in err


def test_tls_failure_is_one_line(grafana, stand_in, capsys):
    # https:// to a plain-HTTP server: the TLS handshake fails as with an unknown certificate.
    code, _out, err = _push(grafana.url.replace("http:", "https:"), capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "TLS" in err and "[SSL:" in err


def test_token_only_from_environment(grafana, stand_in, capsys, monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN")
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2 and "GRAFANA_TOKEN" in err and grafana.calls == []


def test_url_with_sub_path(grafana, stand_in, capsys):
    # Grafana behind a proxy at /grafana/: the prefix goes before /api (the fake, serving only
    # /api, answers 404, which must still end in one line and exit 2).
    code, _out, err = _push(grafana.url + "/grafana", capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "404" in err
    assert all(path.startswith("/grafana/api/") for _m, path, _b in grafana.calls)


def test_real_content_pushes_every_dashboard(grafana, capsys):
    boards = pytest.importorskip("machikit.grafana.dashboards")
    code, _out, err = _push(grafana.url, capsys)
    assert (code, err) == (0, "")
    posted = [body["dashboard"]["uid"] for m, p, body in grafana.calls
              if (m, p) == ("POST", "/api/dashboards/db")]
    assert posted == list(boards.all_dashboards())
    datasource = next(body for m, p, body in grafana.calls
                      if (m, p) == ("POST", "/api/datasources"))
    assert datasource["jsonData"]["timescaledb"] is True
    assert datasource["secureJsonData"] == {"password": PASSWORD}


# --- export ----------------------------------------------------------------------------------

def _check_export(out: Path, boards: types.ModuleType) -> None:
    yaml = pytest.importorskip("yaml")
    for kind, key in (("datasources", "datasources"), ("dashboards", "providers")):
        files = sorted((out / "provisioning" / kind).glob("*.y*ml"))
        assert files, kind
        for path in files:
            assert yaml.safe_load(path.read_text(encoding="utf-8"))["apiVersion"] == 1
            assert key in yaml.safe_load(path.read_text(encoding="utf-8"))
    written = {json.loads(p.read_text(encoding="utf-8"))["uid"]: json.loads(p.read_text())
               for p in (out / "dashboards").glob("*.json")}
    assert written == boards.all_dashboards()


def test_export_generates_provisioning(stand_in, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grafana_cli, "REPO_PROVISIONING", tmp_path / "none")
    assert main(["grafana", "export", "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    _check_export(out, stand_in)
    import yaml

    source = yaml.safe_load((out / "provisioning/datasources/machikit.yaml").read_text())
    ds = source["datasources"][0]
    assert ds["secureJsonData"] == {"password": "${MACHIKIT_GRAFANA_DB_PASSWORD}"}
    assert ds["url"] == "${MACHIKIT_GRAFANA_DB_HOST}" and ds["jsonData"]["timescaledb"] is True
    assert ds["jsonData"]["sslmode"] == "${MACHIKIT_GRAFANA_DB_SSLMODE}"
    provider = yaml.safe_load((out / "provisioning/dashboards/machikit.yaml").read_text())
    assert provider["providers"][0]["folderUid"] == "machikit"
    assert "Wrote 4 files" in capsys.readouterr().out


def test_export_real_content(tmp_path):
    boards = pytest.importorskip("machikit.grafana.dashboards")
    assert main(["grafana", "export", "--out", str(tmp_path)]) == 0
    _check_export(tmp_path, boards)


def test_to_yaml_round_trips():
    yaml = pytest.importorskip("yaml")
    value = {"apiVersion": 1, "list": [{"a": "x: y", "b": [1, 2], "c": {}}, "日本語"],
             "nested": {"t": True, "n": None, "s": "${VAR}"}}
    assert yaml.safe_load(grafana_cli.to_yaml(value)) == value


# --- deploy/compose.yaml (no Docker here: parsed and checked, never started) -----------------

def test_compose_file_is_consistent():
    yaml = pytest.importorskip("yaml")
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"timescaledb", "mosquitto", "collector", "api", "grafana"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name  # pinned
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or ("_URL" in key and "@" in str(value)):
                assert "${" in str(value), (name, key)  # secrets only from deploy/.env
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert source == "./mosquitto" or (deploy / source).is_dir(), volume
    grafana = services["grafana"]["volumes"]
    provider = yaml.safe_load((deploy.parent / "dashboards/provisioning/dashboards/machikit.yaml")
                              .read_text(encoding="utf-8"))
    json_dir = provider["providers"][0]["options"]["path"]
    assert f"../dashboards/json:{json_dir}:ro" in grafana
    assert services["collector"]["command"] == ["collect"]
    assert services["api"]["command"][0] == "api"
