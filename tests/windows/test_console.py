"""The commands on a Japanese Windows console: output encoded as cp932.

Windows' own console window gets Unicode from Python, but output redirected to a file or a
pipe (`machikit device list > 機器.txt`, `| findstr`), and older consoles, are encoded with
the ANSI code page: cp932. PYTHONIOENCODING=cp932 with LANG=C gives exactly that here. Each
command, and its error paths, must exit as expected, never with a UnicodeEncodeError or a
traceback, and its Japanese must read right when the bytes are decoded as cp932.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from machikit.texts import TEXTS
from tests.conftest import FIXTURES, REPO

GPS_LOG = FIXTURES / "nmea" / "gpsd" / "neo-m8n.log"


def console_env(data_dir: Path) -> dict[str, str]:
    """A user's shell on a cp932 console: no UTF-8 mode, no test-service variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MACHIKIT_", "LC_")) and k not in ("PYTHONUTF8", "LANGUAGE")}
    env.update(PYTHONIOENCODING="cp932", LANG="C", PYTHONPATH=str(REPO),
               MACHIKIT_DATA_DIR=str(data_dir))
    return env


def machikit(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "machikit", *args], cwd=cwd,
                          env=console_env(cwd / "data"), capture_output=True, timeout=120)


def finished(done: subprocess.CompletedProcess[bytes], code: int) -> tuple[str, str]:
    """stdout and stderr as a cp932 console shows them, once the exit code is as expected."""
    out, err = done.stdout.decode("cp932"), done.stderr.decode("cp932")  # must be cp932
    assert "Traceback" not in err and "UnicodeEncodeError" not in err, err
    assert done.returncode == code, (done.returncode, out, err)
    return out, err


def japanese(key: str) -> list[str]:
    """The fixed parts of a message's Japanese text (the values between them vary)."""
    return [part for part in re.split(r"\{[^}]*\}", TEXTS[key][0]) if len(part.strip()) > 1]


def shows(text: str, key: str) -> bool:
    return all(part in text for part in japanese(key))


def test_the_console_is_cp932_here(tmp_path: Path) -> None:
    """Proof that the set-up is in force: a character outside cp932 cannot be printed."""
    done = subprocess.run([sys.executable, "-c", "print('\\U00020bb7')"], cwd=tmp_path,
                          env=console_env(tmp_path), capture_output=True, timeout=60)
    assert done.returncode == 1 and b"UnicodeEncodeError" in done.stderr
    done = subprocess.run([sys.executable, "-c", "print('役場')"], cwd=tmp_path,
                          env=console_env(tmp_path), capture_output=True, timeout=60)
    assert done.stdout == "役場\n".encode("cp932")


def test_help(tmp_path: Path) -> None:
    out, _ = finished(machikit(tmp_path, "--help"), 0)
    assert "まちキット" in out and "ボードに書き込む" in out


def test_device_commands(tmp_path: Path) -> None:
    out, _ = finished(machikit(tmp_path, "device", "add", "muroran", "bus-01", "--kind", "bus",
                               "--service-hours", "mon-fri 06:30-21:30"), 0)
    assert shows(out, "device_added") and shows(out, "device_password_once")
    out, _ = finished(machikit(tmp_path, "device", "list"), 0)
    assert "bus-01" in out and TEXTS["device_col_town"][0] in out
    out, _ = finished(machikit(tmp_path, "device", "broker-files", "--out",
                               str(tmp_path / "ブローカー")), 0)
    assert shows(out, "device_broker_files") and "ブローカー" in out


def test_device_errors(tmp_path: Path) -> None:
    _, err = finished(machikit(tmp_path, "device", "add", "muroran", "bus-01", "--kind",
                               "bogus"), 2)
    assert shows(err, "device_bad_kind")
    # a name with a character outside cp932: the error (stderr) still reads
    _, err = finished(machikit(tmp_path, "device", "add", "muroran", "bus-\U00020bb7",
                               "--kind", "bus"), 2)
    assert shows(err, "device_bad_name")
    _, err = finished(machikit(tmp_path, "device", "add", "muroran", "bus-01"), 2)
    assert "--kind" in err  # argparse: the missing option


def test_bad_config(tmp_path: Path) -> None:
    (tmp_path / "壊れた.toml").write_text("x = [\n", encoding="utf-8", newline="\n")
    (tmp_path / "余計.toml").write_text("nonsense = 1\n", encoding="utf-8", newline="\n")
    _, err = finished(machikit(tmp_path, "device", "--config", "壊れた.toml", "list"), 1)
    assert shows(err, "config_unreadable") and "壊れた.toml" in err
    _, err = finished(machikit(tmp_path, "device", "--config", "余計.toml", "list"), 1)
    assert shows(err, "config_invalid") and "nonsense" in err
    _, err = finished(machikit(tmp_path, "device", "--config", "ない.toml", "list"), 1)
    assert shows(err, "config_unreadable") and "ない.toml" in err
    _, err = finished(machikit(tmp_path, "pi", "run", "gps", "--config", "壊れた.toml"), 2)
    assert "壊れた.toml" in err and " / " in err


def test_gps_check(tmp_path: Path) -> None:
    out, _ = finished(machikit(tmp_path, "pi", "gps-check", str(GPS_LOG)), 0)
    assert TEXTS["gps_col_file"][0] in out and "neo-m8n.log" in out
    _, err = finished(machikit(tmp_path, "pi", "gps-check", "ない.nmea"), 1)
    assert shows(err, "gps_check_unreadable") and "ない.nmea" in err
    _, err = finished(machikit(tmp_path, "pi", "gps-check"), 2)
    assert "files" in err  # argparse: the missing argument


def test_grafana_export(tmp_path: Path) -> None:
    out, _ = finished(machikit(tmp_path, "grafana", "export", "--out", "ダッシュボード"), 0)
    assert shows(out, "grafana_exported") and "ダッシュボード" in out
    (tmp_path / "ファイル").write_bytes(b"")
    _, err = finished(machikit(tmp_path, "grafana", "export", "--out", "ファイル"), 2)
    assert shows(err, "grafana_export_failed") and "ファイル" in err


def test_flash_names_the_missing_port(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    out, _ = finished(machikit(tmp_path, "flash", "--port", port, "--app", "snow", "--town",
                               "muroran", "--name", "snow-01", "--user", "muroran.snow-01",
                               "--password", "pw", "--wifi-ssid", "役場ゲスト",
                               "--wifi-password", "x", "--broker-host", "192.0.2.1"), 1)
    assert shows(out, "flash_no_port") and port in out
    _, err = finished(machikit(tmp_path, "flash", "--port", port, "--app", "雪"), 2)
    assert "--app" in err  # argparse: a bad choice


# --- the safety net: a character outside cp932 never crashes a command --------------------
# 𠮷 (the 吉 of 𠮷野家, in real family names) is not in cp932: in a user's folder name or an
# exception's detail, printing it on a cp932 stdout raised UnicodeEncodeError after the work
# was done. machikit/cli.py main() makes stdout and stderr replace what cp932 cannot show.

OUTSIDE_CP932 = "\U00020bb7田"


def test_a_path_outside_cp932_never_crashes_a_command(tmp_path: Path) -> None:
    home = tmp_path / f"{OUTSIDE_CP932} 太郎" / "まちキット 研修"
    home.mkdir(parents=True)
    log = home / f"{OUTSIDE_CP932}.nmea"
    log.write_bytes(GPS_LOG.read_bytes())
    out, _ = finished(machikit(home, "device", "broker-files", "--out", str(home / "broker")), 0)
    assert shows(out, "device_broker_files") and (home / "broker" / "acl").exists()
    out, _ = finished(machikit(home, "grafana", "export", "--out", str(home / "grafana")), 0)
    assert shows(out, "grafana_exported")
    out, _ = finished(machikit(home, "pi", "gps-check", str(log)), 0)
    assert TEXTS["gps_col_file"][0] in out and "田.nmea" in out


def test_an_error_detail_outside_cp932_never_crashes_a_command(tmp_path: Path) -> None:
    port = str(tmp_path / f"tty-{OUTSIDE_CP932}")
    out, _ = finished(machikit(tmp_path, "flash", "--port", port, "--app", "snow", "--town",
                               "muroran", "--name", "snow-01", "--user", "muroran.snow-01",
                               "--password", "pw", "--wifi-ssid", "役場", "--wifi-password",
                               "x", "--broker-host", "192.0.2.1"), 1)
    assert shows(out, "flash_no_port") and "田" in out


def test_workshop_commands(tmp_path: Path) -> None:
    """The instructor's commands and their refusals, on a cp932 console, in a folder with a
    space and Japanese: a Shift_JIS roster, the labels, and one line for each mistake."""
    home = tmp_path / "講習会 2026"
    home.mkdir()
    (home / "名簿.csv").write_bytes("名前,アプリ,公開\n山田 花子,snow,はい\n".encode("cp932"))
    out, _ = finished(machikit(home, "workshop", "prepare", "名簿.csv", "--town", "tokamachi",
                               "--wifi-ssid", "役場-AP", "--place", "37.1275,138.7590",
                               "--map-url", "http://192.168.10.2:8080/"), 0)
    assert shows(out, "workshop_prepare_done") and shows(out, "workshop_brokerfiles_done")
    out, _ = finished(machikit(home, "workshop", "labels"), 1)  # no server yet, no --map-url
    out, err = finished(machikit(home, "workshop", "labels", "--map-url",
                                 "http://192.168.10.2:8080/"), 0)
    assert shows(out, "workshop_labels_done")
    _, err = finished(machikit(home, "workshop", "flash", "--broker-host", "127.0.0.1",
                               "--wifi-password", "x"), 1)
    assert shows(err, "workshop_loopback_broker")
    _, err = finished(machikit(home, "workshop", "status", "--once"), 1)
    assert shows(err, "workshop_no_watch_url")
    _, err = finished(machikit(home, "workshop", "serve", "--host", "127.0.0.1"), 2)
    assert shows(err, "workshop_no_lan_address")
    _, err = finished(machikit(home, "workshop", "prepare", "名簿.csv", "--town", "tokamachi",
                               "--wifi-ssid", "x", "--place", "北緯37度"), 2)
    assert "北緯37度" in err
