"""Runtime parts of the firmware on the real MicroPython unix port: the config file
(firmware/lib/mk_config.py), the clock (mk_clock.py) and crash-loop / watchdog guards
(mk_safe.py). Time, NTP and the watchdog are fakes in runtime_runner.py.

Every run of runtime_runner.py is one "boot"; a restart is the next run, and a power cut is
simulated by damaging files from here between two runs.

Heap budget: runs from source get `-X heapsize=64k` (HEAP), as in test_store.py: most of it
goes to the compiler turning the module and the runner into bytecode, which a board never
does. mk_store (a dependency here, tested from source in test_store.py) is given to these
runs as mk_store.mpy: mk_config.py + mk_store.py + the runner all from source need ~80 KB
(measured with MicroPython 1.25 unix: fails at 72 KB). The .mpy test runs everything
compiled in SMALL_HEAP (see there for the numbers).
"""

import json
import zlib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import mpy_cross, run_runner

pytestmark = pytest.mark.services

LIB = REPO / "firmware" / "lib"
RUNNER = Path(__file__).with_name("runtime_runner.py")
PARTS = ("mk_config", "mk_clock", "mk_safe", "mk_wifi")
HEAP = "64k"  # see the module docstring
SMALL_HEAP = "40k"
EPOCH_2000 = 946684800

GOOD = {
    "wifi": {"ssid": "tokamachi-office", "password": "secret"},
    "broker": {"host": "mqtt.example.jp"},
    "device": {"town": "tokamachi", "name": "snow-01", "user": "snow-01", "password": "pw"},
    "app": {"name": "snow", "settings": {"interval_s": 120, "change_cm": 2}},
}


def compile_to(lib: Path, source: Path) -> Path:
    return mpy_cross(source, lib / (source.stem + ".mpy"))


@pytest.fixture(scope="module")
def srclib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three parts as source, mk_store as .mpy (see the module docstring)."""
    lib = tmp_path_factory.mktemp("srclib")
    compile_to(lib, LIB / "mk_store.py")
    for name in PARTS:
        (lib / f"{name}.py").write_bytes((LIB / f"{name}.py").read_bytes())
    return lib


def run(micropython: str, lib: Path, *args: object, heap: str = HEAP) -> list[dict]:
    return run_runner(micropython, RUNNER, lib, args, heap)


def write_config(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def both_languages(line: str) -> bool:
    ja, sep, en = line.partition(" / config: ")
    return bool(sep) and any(ord(c) > 0x3000 for c in ja) and en.isascii() and len(en) > 5


# --- config.json ---------------------------------------------------------------------------

def test_good_config_gets_defaults(micropython: str, srclib: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json", GOOD)
    (line,) = run(micropython, srclib, "config", path)
    assert line["ok"] is True and line["problems"] == []
    cfg = line["cfg"]
    assert cfg["wifi"]["country"] == "JP"  # channels 12-13
    assert cfg["broker"] == {"host": "mqtt.example.jp", "port": 8883, "tls": True}
    assert cfg["app"]["settings"] == {"interval_s": 120, "status_s": 300, "change_cm": 2}


PROBLEMS = [
    # (change to GOOD, the English part that must be reported)
    (("wifi", "ssid", None), "wifi.ssid is missing"),
    (("wifi", "ssid", ""), "wifi.ssid is missing"),
    (("broker", "host", None), "broker.host is missing"),
    (("device", "town", None), "device.town is missing"),
    (("device", "name", None), "device.name is missing"),
    (("device", "user", None), "device.user is missing"),
    (("device", "password", None), "device.password is missing"),
    (("app", "name", None), "app.name is missing"),
    (("wifi", "ssid", "x" * 33), "wifi.ssid is longer than 32 bytes"),
    (("wifi", "ssid", "役場" * 6), "wifi.ssid is longer than 32 bytes"),  # 36 bytes in UTF-8
    (("wifi", "password", 1234), "wifi.password must be text"),
    (("wifi", "country", None), "wifi.country must be text"),
    (("broker", "port", "1883"), "broker.port must be a whole number"),
    (("broker", "port", True), "broker.port must be a whole number"),
    (("broker", "port", 70000), "broker.port must be between 1 and 65535"),
    (("broker", "tls", "yes"), "broker.tls must be true or false"),
    (("device", "town", "Tokamachi"), "device.town must be a-z, 0-9, '-' or '_'"),
    (("device", "name", "snow 01"), "device.name must be a-z, 0-9, '-' or '_'"),
    (("app", "settings", [1]), "app.settings must be an object"),
    (("app", "settings", {"interval_s": 1}), "app.settings.interval_s must be between 10"),
    (("app", "settings", {"interval_s": 6.5}), "app.settings.interval_s must be a whole"),
    (("app", "settings", {"change_cm": "2"}), "app.settings.change_cm must be a number"),
    (("wifi", None, "office"), "wifi must be an object"),
]


def test_every_problem_is_reported_in_both_languages(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    for i, ((section, key, value), expected) in enumerate(PROBLEMS):
        data = json.loads(json.dumps(GOOD))
        if key is None:
            data[section] = value
        elif value is None:
            data[section].pop(key, None)
            if key == "country":
                data[section][key] = None
        else:
            data[section][key] = value
        path = write_config(tmp_path / f"c{i}.json", data)
        (line,) = run(micropython, srclib, "config", path)
        assert line["ok"] is False, expected
        assert any(expected in p for p in line["problems"]), (expected, line["problems"])
        assert all(both_languages(p) for p in line["problems"]), line["problems"]
        assert all("\n" not in p for p in line["problems"])


def test_unknown_app_settings_are_kept(micropython: str, srclib: Path, tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["app"]["settings"]["beep_on_ms"] = 150  # an app's own setting: not ours to judge
    (line,) = run(micropython, srclib, "config", write_config(tmp_path / "c.json", data))
    assert line["ok"] and line["cfg"]["app"]["settings"]["beep_on_ms"] == 150


@pytest.mark.parametrize("content", [
    None, b"", b"{", b'{"wifi": {"ssid": "of', b"\xff\xfe{}", b"[1, 2]", b"42", b"null",
    b"{" + b" " * 3000 + b"}",
])
def test_missing_or_broken_file_is_not_configured(
    micropython: str, srclib: Path, tmp_path: Path, content: bytes | None
) -> None:
    """No crash and no setup mode: defaults, ok=False, and lines saying why."""
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    (line,) = run(micropython, srclib, "config", path)
    assert line["ok"] is False and line["problems"]
    assert all(both_languages(p) for p in line["problems"])
    assert line["cfg"]["wifi"]["country"] == "JP" and line["cfg"]["broker"]["port"] == 8883
    if content is None:
        assert "config.json is missing" in line["problems"][0]
    if content == b"{":  # parses nowhere: the file itself is reported, not its fields
        assert "not valid JSON" in line["problems"][0]


def test_not_configured_logs_once_a_minute(micropython: str, srclib: Path) -> None:
    (line,) = run(micropython, srclib, "nag", 0, 1000, 58000, 1000, 30000, 30000, 60000)
    # t = 0, 1 s, 59 s, 60 s, 90 s, 120 s, 180 s
    assert line["polls"] == [True, False, False, True, False, True, True]
    assert line["lines"] == 4 * 3  # a header and both problems each time
    assert "not configured" in line["first"][0]


# --- remote settings (`cmd`) ---------------------------------------------------------------

def remote(micropython: str, lib: Path, tmp_path: Path, cmd: object) -> tuple[dict, dict]:
    path = tmp_path / "config.json"
    if not path.exists():
        write_config(path, GOOD)
    text = cmd if isinstance(cmd, str) else json.dumps(cmd)
    first, again = run(micropython, lib, "remote", path, tmp_path / "remote", text)
    return first, again


def test_remote_settings_are_merged_and_survive_a_restart(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    first, again = remote(micropython, srclib, tmp_path,
                          {"v": 1, "set": {"interval_s": 30, "on_threshold": 9000}})
    assert first["changed"] == {"interval_s": 30, "on_threshold": 9000}
    assert first["refused"] == []
    assert first["settings"]["interval_s"] == 30 and again["settings"]["interval_s"] == 30
    assert again["settings"]["on_threshold"] == 9000
    assert (tmp_path / "config.json").read_text() == json.dumps(GOOD)  # never rewritten
    # The retained cmd comes again at every reconnect: no change, no flash write.
    before = (tmp_path / "remote").stat().st_mtime_ns
    first, _ = remote(micropython, srclib, tmp_path,
                      {"v": 1, "set": {"interval_s": 30, "on_threshold": 9000}})
    assert first["changed"] == {} and (tmp_path / "remote").stat().st_mtime_ns == before
    # null: back to what config.json says.
    first, again = remote(micropython, srclib, tmp_path, {"v": 1, "set": {"interval_s": None}})
    assert first["changed"] == {"interval_s": None}
    assert first["settings"]["interval_s"] == 120 and again["settings"]["interval_s"] == 120
    assert again["settings"]["on_threshold"] == 9000


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("interval_s", 5, "cmd.set.interval_s must be between 10 and 86400"),
    ("interval_s", 10**9, "cmd.set.interval_s must be between 10 and 86400"),
    ("interval_s", "60", "cmd.set.interval_s must be a whole number"),
    ("interval_s", True, "cmd.set.interval_s must be a whole number"),
    ("interval_s", 60.5, "cmd.set.interval_s must be a whole number"),
    ("change_cm", [2], "cmd.set.change_cm must be a number"),
    ("pings", 99, "cmd.set.pings must be between 1 and 31"),
    ("ssid", "evil-ap", "cmd may not change ssid"),
    ("wifi", {"ssid": "evil-ap", "password": "x"}, "cmd may not change wifi"),
    ("password", "x", "cmd may not change password"),
    ("broker", {"host": "evil.example"}, "cmd may not change broker"),
    ("device", {"user": "x"}, "cmd may not change device"),
    ("host", "evil.example", "cmd may not change host"),
])
def test_remote_refuses_bad_values_and_credentials(
    micropython: str, srclib: Path, tmp_path: Path, key: str, value: object, expected: str
) -> None:
    first, again = remote(micropython, srclib, tmp_path,
                          {"v": 1, "set": {key: value, "status_s": 600}})
    assert first["changed"] == {"status_s": 600}  # the good part of the same cmd is taken
    assert len(first["refused"]) == 1 and expected in first["refused"][0], first["refused"]
    assert both_languages(first["refused"][0])
    assert first["wifi"]["ssid"] == "tokamachi-office" and first["device"]["user"] == "snow-01"
    assert again["settings"] == {"interval_s": 120, "status_s": 600, "change_cm": 2}
    assert "evil" not in (tmp_path / "remote").read_text()


@pytest.mark.parametrize("cmd", ["not json", "[1]", '{"v": 2, "set": {"interval_s": 60}}',
                                 '{"v": 1, "set": 60}', '{"v": 1}'])
def test_a_malformed_cmd_changes_nothing(
    micropython: str, srclib: Path, tmp_path: Path, cmd: str
) -> None:
    first, again = remote(micropython, srclib, tmp_path, cmd)
    assert first["changed"] == {} and len(first["refused"]) == 1
    assert both_languages(first["refused"][0])
    assert again["settings"]["interval_s"] == 120
    assert not (tmp_path / "remote").exists()


def test_remote_on_a_broken_config_does_not_crash(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    data = json.loads(json.dumps(GOOD))
    data["app"]["settings"] = [1]
    write_config(tmp_path / "config.json", data)
    first, _ = remote(micropython, srclib, tmp_path, {"v": 1, "set": {"interval_s": 30}})
    assert first["changed"] == {"interval_s": 30} and first["settings"] == {"interval_s": 30}


def checked_text(text: str) -> bytes:
    """A small state file as mk_store.write_atomic writes it (its CRC-32 is zlib's)."""
    return f"{text} {zlib.crc32(text.encode()):08x}\n".encode()


@pytest.mark.parametrize("kept", [0, 1, 5, 20, -10, -1])
def test_power_cut_while_saving_keeps_old_or_new(
    micropython: str, srclib: Path, tmp_path: Path, kept: int
) -> None:
    remote(micropython, srclib, tmp_path, {"v": 1, "set": {"interval_s": 30}})
    saved = tmp_path / "remote"
    # The next save was cut while writing remote.new: a torn .new next to the old file.
    whole = checked_text(json.dumps({"interval_s": 45, "status_s": 900}))
    saved.with_name("remote.new").write_bytes(whole[: kept if kept >= 0 else len(whole) + kept])
    (line,) = run(micropython, srclib, "config", tmp_path / "config.json", saved)
    settings = line["cfg"]["app"]["settings"]
    if kept == -1:  # only the newline lost: the CRC proves it whole, so it is the new one
        assert settings["interval_s"] == 45 and settings["status_s"] == 900
    else:
        assert settings["interval_s"] == 30 and settings["status_s"] == 300  # the old one
    assert line["ok"] is True
    # Cut after .new was written, before the rename, and the old file damaged too: the new.
    saved.with_name("remote.new").write_bytes(whole)
    saved.write_bytes(b"garbage")
    (line,) = run(micropython, srclib, "config", tmp_path / "config.json", saved)
    assert line["cfg"]["app"]["settings"]["interval_s"] == 45
    # A later remote change after such a cut still works and leaves no .new behind.
    _, again = remote(micropython, srclib, tmp_path, {"v": 1, "set": {"interval_s": 90}})
    assert again["settings"]["interval_s"] == 90 and again["settings"]["status_s"] == 900
    assert not saved.with_name("remote.new").exists()


def test_a_remote_file_out_of_range_is_ignored(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    """A remote file from another firmware version must not bring in a bad value."""
    write_config(tmp_path / "config.json", GOOD)
    (tmp_path / "remote").write_bytes(checked_text('{"interval_s": 1, "ssid": "x", "pings": 5}'))
    (line,) = run(micropython, srclib, "config", tmp_path / "config.json", tmp_path / "remote")
    assert line["cfg"]["app"]["settings"]["interval_s"] == 120
    assert line["cfg"]["app"]["settings"]["pings"] == 5
    assert line["cfg"]["wifi"]["ssid"] == "tokamachi-office"


# --- clock ---------------------------------------------------------------------------------

NTP_2025 = 1736895600 - EPOCH_2000  # 2025-01-15 08:00 JST, as a 2000-epoch port counts


def clock(micropython: str, lib: Path, *ops: str, offset: int = EPOCH_2000,
          start: int = 0) -> list[dict]:
    return run(micropython, lib, "clock", offset, start, *ops)


def test_unsynced_then_synced_stamps(micropython: str, srclib: Path) -> None:
    start = (1 << 30) - 3000  # ticks_ms wraps 3 s after boot: `up` must keep counting
    lines = clock(micropython, srclib, "s", "w:5000", "s", f"ok:{NTP_2025}", "w:1234", "s",
                  "w:2000", "s", start=start)
    assert lines[0]["stamp"] == {"sync": False, "boot": 7, "up": 0}
    assert lines[1]["stamp"] == {"sync": False, "boot": 7, "up": 5000}
    assert lines[2]["did"] is True and lines[2]["stamp"] == {"t": 1736895600000}
    assert lines[3]["stamp"] == {"t": 1736895601234}  # ms steps from ticks, not whole s
    assert lines[4]["stamp"] == {"t": 1736895603234}
    assert lines[4]["next"] == 6 * 3600000 - 3234  # resync in 6 h


def test_epoch_offset(micropython: str, srclib: Path) -> None:
    (line,) = run(micropython, srclib, "epoch")
    assert line == {"op": "epoch", "here": 0, "y2000": EPOCH_2000, "y1970": 0}  # unix: 1970
    # The same NTP moment on a 1970-epoch port.
    lines = clock(micropython, srclib, f"ok:{NTP_2025 + EPOCH_2000}", offset=0)
    assert lines[0]["stamp"] == {"t": 1736895600000}
    # A wrong offset (2000-epoch time read as 1970) gives a time before 2020: not a sync.
    lines = clock(micropython, srclib, f"ok:{NTP_2025}", offset=0)
    assert lines[0]["did"] is False and lines[0]["stamp"]["sync"] is False


def test_ntp_failure_backs_off_and_keeps_state(micropython: str, srclib: Path) -> None:
    ops = ["p:fail"]  # at 0: fails, next try in 10 s
    ops += ["w:9999", "p:fail", "w:1", "p:fail"]  # 10 s: fails, 20 s
    ops += ["w:20000", "p:fail", "w:40000", "p:fail"]  # 40 s, 80 s
    ops += ["w:80000", f"p:ok:{NTP_2025}"]  # synced; the failures are forgotten
    ops += ["w:21600000", "p:fail", "s"]  # resync fails: still synced, old base
    ops += ["w:10000", f"p:ok:{NTP_2025 + 21610}"]
    lines = clock(micropython, srclib, *ops)
    calls = [line["calls"] for line in lines]
    assert calls == [1, 1, 2, 3, 4, 5, 6, 6, 7]  # nothing asked before it was due
    assert [line["next"] for line in lines[:6]] == [10000, 1, 20000, 40000, 80000, 21600000]
    assert [line["failures"] for line in lines[:5]] == [1, 1, 2, 3, 4]
    assert all(line["stamp"]["sync"] is False for line in lines[:5])
    assert lines[5]["synced"] is True and lines[5]["failures"] == 0
    assert lines[6]["synced"] is True and lines[6]["did"] is False
    assert lines[6]["stamp"] == {"t": 1736895600000 + 21600000}  # kept counting
    assert lines[7]["stamp"] == {"t": 1736895600000 + 21600000}
    assert lines[8]["did"] is True and lines[8]["stamp"] == {"t": 1736895600000 + 21610000}


def test_ntp_backoff_stops_at_thirty_minutes(micropython: str, srclib: Path) -> None:
    lines = clock(micropython, srclib, *["fail"] * 12)
    waits = [line["next"] for line in lines]
    assert waits[:9] == [*(10000 * 2**i for i in range(8)), 1800000]
    assert waits[-1] == 1800000


# --- Wi-Fi ---------------------------------------------------------------------------------

def wifi(micropython: str, lib: Path, *ops: str) -> list[dict]:
    *polls, end = run(micropython, lib, "wifi", *ops)
    assert end["country"] == "JP"  # set before the radio starts: channels 12 and 13
    return polls


def test_wifi_retries_with_a_doubling_wait_and_never_blocks(
    micropython: str, srclib: Path,
) -> None:
    polls = wifi(micropython, srclib,
                 "p", "w:14999", "p",  # join 1 starts; still joining just before 15 s
                 "w:1", "p",  # 15 s: given up, retry in 10 s
                 "w:9999", "p", "w:1", "p",  # not before 25 s; join 2 starts at 25 s
                 "w:15000", "p",  # 40 s: given up, retry in 20 s
                 "ap:on", "w:20000", "p", "p")  # the access point is back: join 3, up
    assert [p["connects"] for p in polls] == [1, 1, 1, 1, 2, 2, 3, 3]
    assert [p["up"] for p in polls] == [False] * 7 + [True]
    assert polls[2]["next"] == 25000 and polls[5]["next"] == 60000
    assert [p["failures"] for p in polls] == [0, 0, 1, 1, 1, 2, 2, 0]
    assert polls[2]["disconnects"] == 1  # the radio's own retries stopped before the next
    assert polls[0]["log"] == ["Wi-Fi: town-hall に接続中 / joining town-hall"]
    assert polls[2]["log"] == ["Wi-Fi: town-hall につながりません（10 秒後に再試行）/ cannot "
                               "join town-hall (status 1), retry in 10 s"]
    assert "retry in 20 s" in polls[5]["log"][0]
    assert polls[7]["log"] == ["Wi-Fi 接続 / Wi-Fi up: 192.0.2.10 -70 dBm"]


def test_wifi_rejoins_at_once_after_a_loss_and_survives_a_busy_radio(
    micropython: str, srclib: Path,
) -> None:
    polls = wifi(micropython, srclib,
                 "ap:on", "p", "p",  # up
                 "ap:off", "w:1000", "p",  # lost: a new join starts at once
                 "w:15000", "p",  # no access point: given up, retry in 10 s
                 "busy", "ap:on", "w:10000", "p",  # connect() raises: logged, not fatal
                 "w:100", "p",  # a failed connect() is not a join
                 "w:14900", "p", "w:20000", "p", "p")  # counted as a failed try; then up
    assert [p["up"] for p in polls] == [False, True] + [False] * 6 + [True]
    assert polls[2]["log"] == ["Wi-Fi 切断 / Wi-Fi lost, joining again",
                               "Wi-Fi: town-hall に接続中 / joining town-hall"]
    assert [p["connects"] for p in polls] == [1, 1, 2, 2, 3, 3, 3, 4, 4]
    assert polls[4]["log"][-1].startswith("Wi-Fi: connect() OSError")
    assert polls[6]["failures"] == 2 and "retry in 20 s" in polls[6]["log"][0]


# --- crash loop and watchdog ---------------------------------------------------------------

def boot(micropython: str, lib: Path, path: Path, power_on: bool = False,
         healthy: bool = False, *extra: str) -> dict:
    (line,) = run(micropython, lib, "boot", path, 3, int(power_on), int(healthy), *extra)
    return line


def test_crash_loop_enters_safe_mode_and_healthy_resets(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    path = tmp_path / "boots"
    assert boot(micropython, srclib, path, True)["count"] == 1  # first power-on
    line = boot(micropython, srclib, path)  # crashed -> watchdog reset
    assert line["count"] == 2 and line["safe"] is False
    line = boot(micropython, srclib, path)  # the 3rd start in a row without getting healthy
    assert line["count"] == 3 and line["safe"] is True
    line = boot(micropython, srclib, path, False, True)  # safe mode runs fine: proves nothing
    assert line["safe"] is True and line["marked"] is False
    line = boot(micropython, srclib, path, False, False, "clear")  # fixed remotely
    assert line["safe"] is True
    line = boot(micropython, srclib, path, False, True)  # apps run again and get healthy
    assert line == {"op": "boot", "count": 1, "safe": False, "marked": True}
    for expected in (1, 2):  # healthy resets: two more crashes are still allowed
        line = boot(micropython, srclib, path)
        assert line["count"] == expected and line["safe"] is False
    assert boot(micropython, srclib, path)["safe"] is True


def test_power_cuts_never_lead_to_safe_mode(
    micropython: str, srclib: Path, tmp_path: Path
) -> None:
    path = tmp_path / "boots"
    for _ in range(5):  # the engine is started five times within a minute
        line = boot(micropython, srclib, path, True)
        assert line["count"] == 1 and line["safe"] is False
    boot(micropython, srclib, path)
    boot(micropython, srclib, path)
    assert boot(micropython, srclib, path, True)["safe"] is False  # power cycle: try again


@pytest.mark.parametrize("content", [b"", b"garbage", b"2 zzzzzzzz\n", b"\x00" * 20])
def test_a_damaged_boot_file_is_not_a_crash_loop(
    micropython: str, srclib: Path, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "boots"
    path.write_bytes(checked_text("2"))
    path.with_name("boots.new").write_bytes(content)  # torn .new: the old file counts
    assert boot(micropython, srclib, path)["count"] == 3
    path.write_bytes(content)
    line = boot(micropython, srclib, path)
    assert line["count"] == 1 and line["safe"] is False


@pytest.mark.parametrize(("asked", "max_ms", "got"), [
    (20000, None, 8300),  # RP2040 cannot wait longer than ~8.3 s
    (8300, None, 8300),
    (5000, None, 5000),
    (100, None, 1000),  # too short to survive one flash write
    (20000, 30000, 20000),  # a port that allows more (ESP32), if asked for
])
def test_watchdog_is_clamped(
    micropython: str, srclib: Path, asked: int, max_ms: int | None, got: int
) -> None:
    args = [asked] if max_ms is None else [asked, max_ms]
    (line,) = run(micropython, srclib, "wdt", *args)
    assert line == {"op": "wdt", "timeout": got, "made": 1, "fed": 3, "clamped": got != asked}


# --- what a board gets ---------------------------------------------------------------------

def test_mpy_cross_compiles_and_runs_in_a_small_heap(
    micropython: str, tmp_path: Path
) -> None:
    """All compiled (as a board gets them), runner included: SMALL_HEAP is enough.

    Measured with MicroPython 1.25 unix (runner + module(s) all .mpy): the config and remote
    runs pass at 34 KB and fail at 32 KB; 28 KB stays in use after a collection, of which
    mk_config (5.7 KB .mpy: its texts are in two languages) keeps ~10 KB and mk_store ~8 KB.
    The boot/watchdog runs pass at 24 KB (fail at 20 KB), the clock run at 16 KB. A Pico W
    has about 150-200 KB free. SMALL_HEAP leaves some room above the config numbers.
    """
    lib = tmp_path / "lib"
    lib.mkdir()
    for source in (LIB / "mk_store.py", *(LIB / f"{n}.py" for n in PARTS), RUNNER):
        assert compile_to(lib, source).stat().st_size > 500
    path = write_config(tmp_path / "config.json", GOOD)
    (line,) = run(micropython, lib, "config", path, heap=SMALL_HEAP)
    assert line["ok"] is True
    _, again = run(micropython, lib, "remote", path, tmp_path / "remote",
                   '{"v":1,"set":{"interval_s":30}}', heap=SMALL_HEAP)
    assert again["settings"]["interval_s"] == 30
    lines = run(micropython, lib, "clock", EPOCH_2000, 0, "s", f"ok:{NTP_2025}", "s",
                heap=SMALL_HEAP)
    assert lines[-1]["stamp"] == {"t": 1736895600000}
    assert run(micropython, lib, "boot", tmp_path / "boots", 3, 0, 0, heap=SMALL_HEAP)
    assert run(micropython, lib, "wdt", 20000, heap=SMALL_HEAP)[0]["timeout"] == 8300
