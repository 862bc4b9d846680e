"""pi/config.py: a good file, and every problem as ONE Japanese + English line naming the
file and the key."""

import tomllib
from pathlib import Path

import pytest

from pi import config, runtime
from pi.config import ConfigError

GOOD = """
[device]
town = "kitamachi"
name = "snow-1"
user = "snow-1"
password = "s3cret-from-the-label"

[broker]
host = "mqtt.kitamachi.example"

[snow]
mount_cm = 182
pings = 7
"""


def write(tmp_path: Path, text: str, name: str = "snow.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problem(job: str, path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        config.load(job, path)
    line = str(caught.value)
    assert "\n" not in line and " / " in line and str(path) in line  # one bilingual line
    return line


def test_good_file_with_defaults(tmp_path: Path) -> None:
    got = config.load("snow", write(tmp_path, GOOD))
    assert got.device["town"] == "kitamachi" and got.broker["port"] == 8883
    assert got.broker["tls"] is True
    assert got.settings["mount_cm"] == 182.0 and isinstance(got.settings["mount_cm"], float)
    assert got.settings["pings"] == 7 and got.settings["trigger_pin"] == 23
    assert got.settings["outbox"] == "/var/lib/machikit/snow-outbox.sqlite3"


def test_missing_key(tmp_path: Path) -> None:
    line = problem("snow", write(tmp_path, GOOD.replace('password = "s3cret-from-the-label"', "")))
    assert "[device]" in line and "password" in line and "必須" in line and "required" in line


def test_wrong_type(tmp_path: Path) -> None:
    line = problem("snow", write(tmp_path, GOOD + 'interval_s = "60"\n'))
    assert "interval_s" in line and "整数" in line and "whole number" in line
    line = problem("snow", write(tmp_path, GOOD.replace("[broker]", "[broker]\ntls = 1")))
    assert "tls" in line and "true or false" in line  # 1 is not a bool


def test_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()  # a folder where the file should be (chmod 000 means nothing to root)
    assert "読めません" in problem("snow", folder)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[device]")
    assert "読めません" in problem("snow", binary)  # not UTF-8
    line = problem("snow", write(tmp_path, "[device\n"))
    assert "書き方" in line and "line 1" in line
    assert "machikit pi install snow" in problem("snow", tmp_path / "missing.toml")


def test_typos_bad_values_and_empty_secrets(tmp_path: Path) -> None:
    assert "mount_cn" in problem("snow", write(tmp_path, GOOD + "mount_cn = 180\n"))
    assert "[snowy]" in problem("snow", write(tmp_path, GOOD.replace("[snow]", "[snowy]")))
    line = problem("snow", write(tmp_path, GOOD + 'model = "sr04"\n'))
    assert "jsn-sr04t" in line and "model" in line
    line = problem("snow", write(tmp_path, GOOD.replace('"kitamachi"', '"Kita Machi"')))
    assert "town" in line
    line = problem("snow", write(tmp_path, GOOD.replace("s3cret-from-the-label", "")))
    assert "password" in line and "空" in line


@pytest.mark.parametrize("job", ["printer", "snow", "gps"])
def test_examples_parse_and_need_only_the_blanks(tmp_path: Path, job: str) -> None:
    text = config.example(job)
    assert "# " in text and "/" in text  # Japanese / English comments
    parsed = tomllib.loads(text)
    assert set(parsed) == {"device", "broker", job}
    line = problem(job, write(tmp_path, text, f"{job}.toml"))
    assert "[device]" in line and "town" in line  # the first blank to fill in
    filled = text.replace('town = ""', 'town = "kitamachi"').replace('name = ""', 'name = "d1"')
    filled = filled.replace('user = ""', 'user = "d1"').replace('password = ""', 'password = "p"')
    filled = filled.replace('host = ""', 'host = "broker"')
    got = config.load(job, write(tmp_path, filled, f"{job}.toml"))
    assert got.settings == {k: v.default for k, v in config.JOBS[job].items()}


def test_gps_keys_for_the_tracker_job() -> None:
    gps = {k: v.default for k, v in config.JOBS["gps"].items()}
    assert gps == {"port": "/dev/ttyACM0", "baud": 9600, "moving_s": 5.0, "parked_s": 60.0,
                   "turn_deg": 30.0, "outbox": "/var/lib/machikit/gps-outbox.sqlite3"}


def test_unknown_job_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        config.load("bus", tmp_path / "x.toml")
    assert config.config_path("gps") == Path("/etc/machikit/gps.toml")
    assert config.config_path("gps", tmp_path) == tmp_path / "etc/machikit/gps.toml"


def test_stamp_and_clock() -> None:
    msg = {"v": 1, "seq": 0, "t": 5, "event": "silenced"}
    assert runtime.stamp(msg, 1795650000000, True) == {"event": "silenced", "t": 1795650000000}
    assert runtime.stamp(msg, 42, False, 3) == {"event": "silenced", "sync": False, "boot": 3,
                                               "up": 42}
    assert isinstance(runtime.clock_synced(), bool)
    assert runtime.monotonic_ms() <= runtime.monotonic_ms()


def test_boot_number_counts_system_boots(tmp_path: Path) -> None:
    first = runtime.boot_number(tmp_path)
    assert first == 1 and runtime.boot_number(tmp_path) == 1  # a job restart: same boot
    record = tmp_path / "boot.json"
    record.write_text(record.read_text().replace('"id": "', '"id": "older-'))
    assert runtime.boot_number(tmp_path) == 2  # another boot_id: the Pi rebooted


def test_sections_read_as_attributes_too(tmp_path: Path) -> None:
    got = config.load("snow", write(tmp_path, GOOD))
    assert got.device.town == "kitamachi" and got.broker.port == 8883
    assert got.snow.mount_cm == 182.0 and got.snow is got.settings  # cfg.<job>
    with pytest.raises(AttributeError):
        _ = got.gps
