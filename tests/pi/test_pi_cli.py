"""`machikit pi …` as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, REPO

ITREK = FIXTURES / "nmea" / "gpsd" / "iTrek.log"


def machikit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "machikit", "pi", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_gps_check_prints_what_a_recorded_log_gives() -> None:
    done = machikit("gps-check", str(ITREK))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "iTrek" in line)
    assert "37" in row  # fixes in the Gifu capture (tests/pi/test_gps_logs.py)


def test_a_broken_config_is_one_bilingual_line(tmp_path: Path) -> None:
    bad = tmp_path / "gps.toml"
    bad.write_text('[device]\ntown = "muroran"\nname = 5\n')
    done = machikit("run", "gps", "--config", str(bad))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert str(bad) in line and " / " in line and "name" in line
    assert any(ord(ch) > 0x3000 for ch in line.split(" / ")[0])  # Japanese first
