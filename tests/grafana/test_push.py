"""`machikit grafana push` against a local emulation of Grafana's documented HTTP API,
and `machikit grafana export`.

The dashboards pushed are the real ones (machikit/grafana/dashboards.py); only Grafana is
emulated, as no Grafana server can be installed here.
"""

import json
import socket
import types
from pathlib import Path

import pytest

from machikit.cli import main
from tests.grafana.fake_grafana import FakeGrafana

TOKEN = "glsa_test-token"
PASSWORD = "pw-for-grafana-only"
PUSH = ["grafana", "push", "--db-host", "db.town.example:5432", "--db-name", "machikit_town",
        "--db-user", "grafana_reader", "--db-sslmode", "verify-full"]


@pytest.fixture
def boards() -> types.ModuleType:
    from machikit.grafana import dashboards

    return dashboards


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

def test_first_push_creates_folder_datasource_and_dashboards(grafana, boards, capsys):
    code, out, err = _push(grafana.url, capsys)
    assert (code, err) == (0, "")
    assert _routes(grafana) == [
        ("GET", "/api/health"),
        ("GET", "/api/folders/machikit"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/machikit-timescaledb"),
        ("POST", "/api/datasources"),
    ] + [("POST", "/api/dashboards/db")] * len(boards.all_dashboards())
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
    for (_m, _p, body), uid in zip(grafana.calls[5:], boards.all_dashboards(), strict=True):
        assert body["dashboard"]["uid"] == uid and body["dashboard"]["id"] is None
        assert (body["folderUid"], body["overwrite"]) == ("machikit", True)
        assert body["message"] == "machikit grafana push"
    lines = out.splitlines()
    # one line per step: health, folder, data source, each dashboard, done
    assert len(lines) == 4 + len(boards.all_dashboards())
    assert all(" / " in line for line in lines)


def test_second_push_updates_in_place(grafana, boards, capsys):
    assert _push(grafana.url, capsys)[0] == 0
    grafana.calls.clear()
    code, _out, err = _push(grafana.url, capsys)
    assert (code, err) == (0, "")
    assert _routes(grafana) == [
        ("GET", "/api/health"),
        ("GET", "/api/folders/machikit"),
        ("GET", "/api/datasources/uid/machikit-timescaledb"),
        ("PUT", "/api/datasources/uid/machikit-timescaledb"),
    ] + [("POST", "/api/dashboards/db")] * len(boards.all_dashboards())
    assert grafana.calls[3][2]["secureJsonData"] == {"password": PASSWORD}
    assert [body["dashboard"]["uid"] for _m, _p, body in grafana.calls[4:]] == list(
        boards.all_dashboards())
    # Nothing exists twice.
    assert (len(grafana.folders), len(grafana.datasources)) == (1, 1)
    assert {uid: d["version"] for uid, d in grafana.dashboards.items()} == {
        uid: 2 for uid in boards.all_dashboards()}


def test_bad_token_is_one_line(grafana, boards, capsys, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong")
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "401" in err and "GRAFANA_TOKEN" in err
    assert grafana.calls[-1][:2] == ("GET", "/api/folders/machikit")  # stopped at once


def test_no_permission_is_one_line(grafana, boards, capsys):
    grafana.forbidden.add(("POST", "/api/datasources"))
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "403" in err
    assert "Traceback" not in err


def test_grafana_down_is_one_line(grafana, boards, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = _push(f"http://127.0.0.1:{port}", capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "Cannot reach Grafana" in err
    assert "Connection refused" in err and "HTTPConnectionPool" not in err


def test_tls_failure_is_one_line(grafana, boards, capsys):
    # https:// to a plain-HTTP server: the TLS handshake fails as with an unknown certificate.
    code, _out, err = _push(grafana.url.replace("http:", "https:"), capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "TLS" in err and "[SSL:" in err


def test_token_only_from_environment(grafana, boards, capsys, monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN")
    code, _out, err = _push(grafana.url, capsys)
    assert code == 2 and "GRAFANA_TOKEN" in err and grafana.calls == []


def test_url_with_sub_path(grafana, boards, capsys):
    # Grafana behind a proxy at /grafana/: the prefix goes before /api (the fake, serving only
    # /api, answers 404, which must still end in one line and exit 2).
    code, _out, err = _push(grafana.url + "/grafana", capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "404" in err
    assert all(path.startswith("/grafana/api/") for _m, path, _b in grafana.calls)


# --- export ----------------------------------------------------------------------------------

def _check_export(out: Path, boards: types.ModuleType) -> None:
    import yaml
    for kind, key in (("datasources", "datasources"), ("dashboards", "providers")):
        files = sorted((out / "provisioning" / kind).glob("*.y*ml"))
        assert files, kind
        for path in files:
            assert yaml.safe_load(path.read_text(encoding="utf-8"))["apiVersion"] == 1
            assert key in yaml.safe_load(path.read_text(encoding="utf-8"))
    written = {json.loads(p.read_text(encoding="utf-8"))["uid"]: json.loads(p.read_text())
               for p in (out / "dashboards").glob("*.json")}
    assert written == boards.all_dashboards()


def test_export_writes_provisioning_and_dashboards(boards, tmp_path, capsys):
    assert main(["grafana", "export", "--out", str(tmp_path)]) == 0
    _check_export(tmp_path, boards)
    written = 2 + len(boards.all_dashboards())
    assert f"Wrote {written} files" in capsys.readouterr().out


# --- deploy/compose.yaml (no Docker here: parsed and checked, never started) -----------------

def test_compose_file_is_consistent():
    import yaml
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
