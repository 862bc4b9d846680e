"""The commands as a user runs them: demo, serve + stats, migrate, and bad input."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from collector.storage import open_storage
from collector.storage.migrations import migrations
from tests.collector.helpers import free_port, wait_until


def machikit(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machikit", *args], cwd=cwd, timeout=timeout,
                          env={**_clean_env(), **(env or {})}, capture_output=True, text=True)


def _clean_env() -> dict[str, str]:
    """The user's shell, without the test suite's MACHIKIT_* service variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}


def test_demo_runs_and_prints_what_is_stored(tmp_path: Path) -> None:
    port = str(free_port())
    done = machikit("demo", "--duration", "7", "--every", "3", cwd=tmp_path,
                    env={"MACHIKIT_EMBEDDED_MQTT_PORT": port, "MACHIKIT_WEB__PORT": "0"})
    assert done.returncode == 0, done.stderr
    assert "地図を開いてください: http://127.0.0.1:" in done.stdout
    assert "Open the map: http://127.0.0.1:" in done.stdout
    assert "デモを終了しました" in done.stdout and "Demo finished" in done.stdout
    for name in ("bus-01", "gomi-01", "yatai-01", "snow-01", "snow-02", "snow_depth"):
        assert name in done.stdout
    assert "車庫内" in done.stdout  # the truck starts in its depot
    final = done.stdout.strip().splitlines()[-1]
    positions = int(final.split("positions ")[1].split(",")[0])
    assert positions >= 6  # bus and truck every 3 s, the stall every 10 s, all at once
    # every device registered with its publish settings (docs/api.md)
    storage = open_storage(f"sqlite:///{tmp_path}/machikit-data/machikit.db")
    try:
        devices = storage.find_devices({("muroran", name) for name in (
            "bus-01", "gomi-01", "yatai-01", "snow-01", "snow-02", "printer-01")})
    finally:
        storage.close()
    kinds = {key[1]: (d.kind, d.public) for key, d in devices.items()}
    assert kinds == {"bus-01": ("bus", True), "gomi-01": ("garbage_truck", True),
                     "yatai-01": ("stall", True), "snow-01": ("snow_gauge", True),
                     "snow-02": ("snow_gauge", True), "printer-01": ("printer_buzzer", False)}
    assert devices["muroran", "bus-01"].settings["service_hours"] == ["00:00-24:00"]
    assert devices["muroran", "gomi-01"].settings["depots"][0]["radius_m"] >= 100
    assert len(devices["muroran", "snow-02"].settings["location"]) == 2


def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {**_clean_env(), "MACHIKIT_EMBEDDED_MQTT_PORT": str(free_port()),
           "MACHIKIT_WEB__PORT": "0"}
    demo = subprocess.Popen([sys.executable, "-m", "machikit", "demo", "--every", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # wait for the first summary: devices are sending
        lines.append(line)
        if "Stored so far" in line:
            break
    demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, "".join(lines) + out
    assert "Demo finished" in out and "Traceback" not in out
    assert "device_status 12" in out.splitlines()[-1]  # online and offline of all six


def test_serve_then_stats_then_ctrl_c(tmp_path: Path) -> None:
    env = {**_clean_env(), "MACHIKIT_EMBEDDED_MQTT_PORT": str(free_port()),
           "MACHIKIT_STATS_INTERVAL_S": "0.5"}
    server = subprocess.Popen([sys.executable, "-m", "machikit", "serve"], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    stats: list[dict] = []
    tries: list[str] = []

    def read() -> bool:
        done = machikit("stats", "--json", "--wait", "1", cwd=tmp_path, env=env)
        tries.append(done.stderr[-300:])
        stats.extend(json.loads(line) for line in done.stdout.splitlines())
        return bool(stats)

    try:
        found = wait_until(read, timeout=30, every=0.5)
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert found, f"server said:\n{out[-3000:]}\nstats said:\n{tries[-1]}"
    assert stats[0]["client_id"] == "machikit-collector"
    assert {"received", "stored", "duplicates", "quarantined", "lag_ms"} <= stats[0].keys()
    assert server.returncode == 0
    assert "まちキットのサーバーが動いています" in out and "停止しました" in out


def test_stats_while_the_demo_runs(tmp_path: Path) -> None:
    """The demo's devices leave retained statuses; stats shows only the collector's counters."""
    env = {**_clean_env(), "MACHIKIT_EMBEDDED_MQTT_PORT": str(free_port()),
           "MACHIKIT_WEB__PORT": "0", "MACHIKIT_STATS_INTERVAL_S": "0.5"}
    demo = subprocess.Popen([sys.executable, "-m", "machikit", "demo", "--every", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert demo.stdout is not None
    for line in demo.stdout:
        if "Stored so far" in line:
            break
    try:
        done = machikit("stats", "--json", "--wait", "2", cwd=tmp_path, env=env)
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
    assert done.returncode == 0, done.stderr
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert [item["client_id"] for item in items] == ["machikit-collector"]
    assert "Traceback" not in done.stderr


def test_migrate_reports_the_schema_version(tmp_path: Path) -> None:
    done = machikit("migrate", cwd=tmp_path,
                    env={"MACHIKIT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert done.returncode == 0
    newest = migrations("sqlite")[-1].version
    assert f"データベースを版 {newest} にしました" in done.stdout


def test_bad_settings_get_one_clear_bilingual_line(tmp_path: Path) -> None:
    wrong_url = machikit("migrate", cwd=tmp_path, env={"MACHIKIT_DATABASE_URL": "mysql://x"})
    assert wrong_url.returncode != 0
    assert "データベースURLが分かりません" in wrong_url.stderr
    assert "Unknown database URL" in wrong_url.stderr
    (tmp_path / "machikit.toml").write_text('batch_max = "many"\n')
    wrong_file = machikit("migrate", cwd=tmp_path)
    assert "設定が正しくありません" in wrong_file.stderr and "batch_max" in wrong_file.stderr
    missing = machikit("serve", "--config", "nowhere.toml", cwd=tmp_path)
    assert "設定ファイル nowhere.toml を読めません" in missing.stderr


def test_unreachable_database_is_reported_without_the_password(tmp_path: Path) -> None:
    done = machikit("migrate", cwd=tmp_path, env={
        "MACHIKIT_DATABASE_URL": f"postgresql://u:SECRET-PW@127.0.0.1:{free_port()}/x"})
    assert done.returncode == 1
    assert "Connection refused" in done.stdout
    assert "SECRET-PW" not in done.stdout + done.stderr


def test_stats_before_any_server_creates_nothing(tmp_path: Path) -> None:
    """Reading counters must never create the collector's login (a race with `serve`)."""
    done = machikit("stats", "--wait", "0.2", cwd=tmp_path)
    assert done.returncode == 1 and "No collector statistics yet" in done.stderr
    assert not (tmp_path / "machikit-data").exists()


def test_port_in_use_hints_name_the_setting_that_fixes_it(tmp_path: Path) -> None:
    """Each hint names an environment variable; setting it to a free port must work."""
    import re
    import socket

    for taken_var, hint in (("MACHIKIT_EMBEDDED_MQTT_PORT", "MACHIKIT_EMBEDDED_MQTT_PORT"),
                            ("MACHIKIT_WEB__PORT", "MACHIKIT_WEB__PORT")):
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = str(squatter.getsockname()[1])
            ports = {"MACHIKIT_EMBEDDED_MQTT_PORT": str(free_port()), "MACHIKIT_WEB__PORT": "0",
                     taken_var: taken}
            failed = machikit("demo", "--duration", "1", cwd=tmp_path, env=ports)
        assert failed.returncode != 0
        assert taken in failed.stderr and hint in failed.stderr, failed.stderr
        named = re.findall(r"MACHIKIT_[A-Z_]+", failed.stderr.split(taken, 1)[1])
        assert hint in named
        fixed = machikit("demo", "--duration", "1", cwd=tmp_path,
                         env={**ports, hint: str(free_port()) if hint != "MACHIKIT_WEB__PORT"
                              else "0"})
        assert fixed.returncode == 0, fixed.stderr


def test_demo_works_where_the_broker_already_has_an_acl(tmp_path: Path) -> None:
    """After a workshop was prepared in the same folder (the embedded broker's acl exists),
    the demo's devices still get in: each logs in as itself, with its own topic rules."""
    env = {"MACHIKIT_EMBEDDED_MQTT_PORT": str(free_port()), "MACHIKIT_WEB__PORT": "0"}
    assert machikit("device", "add", "kita", "snow-01", "--kind", "snow_gauge", cwd=tmp_path,
                    env=env).returncode == 0
    broker = tmp_path / "machikit-data" / "broker"
    assert machikit("device", "broker-files", "--out", str(broker), cwd=tmp_path,
                    env=env).returncode == 0
    done = machikit("demo", "--duration", "6", "--every", "3", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    final = done.stdout.strip().splitlines()[-1]
    assert int(final.split("positions ")[1].split(",")[0]) >= 3, done.stdout
    acl = (broker / "acl").read_text(encoding="utf-8")
    assert "user muroran.bus-01" in acl and "user kita.snow-01" in acl
    assert "refused" not in done.stderr
