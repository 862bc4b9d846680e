"""prepare: roster → registered devices (the REAL registry, SQLite), devices.json, labels;
then the flashing loop over the devices.json that prepare wrote.

No board exists here: the flashing-loop test uses stand-ins for machikit.flash's
find_boards / flash_board / wait_online (marked STAND-IN below). The real flashing is
tested against a simulated board in tests/flash/."""

import json
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from collector import registry
from collector.storage import Storage
from machikit import credentials
from machikit.workshop.flashing import Broker, FlashLoop
from machikit.workshop.prepare import prepare
from machikit.workshop.roster import RosterError
from tests.collector.stacks import migrated

ROSTER = "名前,機器名,アプリ\n山田 太郎,snow-01,snow\n佐藤 花子,,printer\n鈴木 一郎,,snow\n"
MAP = "http://192.168.50.2:8080/"


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with migrated(f"sqlite:///{tmp_path / 'machikit.db'}") as store:
        yield store


def run(tmp_path: Path, storage: Storage, roster: str = ROSTER) -> list[dict]:
    path = tmp_path / "roster.csv"
    path.write_text(roster, encoding="utf-8-sig")
    lines: list[str] = []
    return prepare(path, "ws-town", storage, tmp_path / "out", MAP, "machikit-ws", lines.append)


def test_prepare_registers_devices_with_working_passwords(tmp_path: Path,
                                                          storage: Storage) -> None:
    entries = run(tmp_path, storage)
    assert [e["device"] for e in entries] == ["snow-01", "printer-01", "snow-02"]
    accounts = {a.device.name: a for a in storage.device_accounts("ws-town")}
    assert accounts["printer-01"].device.kind == "printer_buzzer"
    for entry in entries:  # the password in devices.json is the one the broker will accept
        hashed = accounts[entry["device"]].password_hash
        assert hashed and credentials.verify_password(entry["password"], hashed)
        assert entry["user"] == accounts[entry["device"]].mqtt_user
    devices = tmp_path / "out" / "devices.json"
    assert stat.S_IMODE(devices.stat().st_mode) == 0o600  # it holds the passwords
    assert json.loads(devices.read_text(encoding="utf-8"))["devices"] == entries
    assert (tmp_path / "out" / "labels.pdf").read_bytes().startswith(b"%PDF")


def test_running_again_keeps_devices_and_passwords(tmp_path: Path, storage: Storage) -> None:
    first = run(tmp_path, storage)
    again = run(tmp_path, storage, ROSTER + "高橋 次郎,,printer\n")
    assert again[:3] == first  # same credentials, nothing registered twice
    assert again[3]["device"] == "printer-02"
    assert len(storage.device_accounts("ws-town")) == 4


def test_bad_roster_changes_nothing(tmp_path: Path, storage: Storage) -> None:
    with pytest.raises(RosterError):
        run(tmp_path, storage, ROSTER + "X,,camera\n")
    assert storage.device_accounts("ws-town") == []
    assert not (tmp_path / "out").exists()


def test_device_registered_without_devices_json_is_refused(tmp_path: Path,
                                                            storage: Storage) -> None:
    registry.add_device(storage, "ws-town", "snow-01", "snow_gauge")
    with pytest.raises(RosterError) as caught:
        run(tmp_path, storage)
    assert "Row 2: the device snow-01 is registered" in caught.value.problems[0]
    assert len(storage.device_accounts("ws-town")) == 1  # nothing else was added


# --- the flashing loop, over prepare's devices.json ---------------------------------------

@dataclass(frozen=True)
class Board:  # same fields as machikit.flash's BoardPort
    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    kind: str


class FlashError(Exception):
    pass


@pytest.fixture
def fake_flash(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """STAND-IN for machikit.flash's find_boards / flash_board / wait_online: no USB
    board exists in the test environment. It records what would be flashed."""
    fake = SimpleNamespace(plugged=[], flashed=[], fail=set(), FlashError=FlashError)
    fake.find_boards = lambda: list(fake.plugged)

    def flash_board(port, app, device_config, progress=None):  # type: ignore[no-untyped-def]
        serial = next(b.serial_number for b in fake.plugged if b.device == port)
        if serial in fake.fail:
            raise FlashError("port busy")
        fake.flashed.append((serial, app, device_config))

    fake.flash_board = flash_board
    fake.wait_online = lambda mqtt_url, town, name, timeout: True
    monkeypatch.setitem(sys.modules, "machikit.flash", fake)
    return fake


def test_boards_get_the_next_device_once_and_a_restart_continues(
        tmp_path: Path, storage: Storage, fake_flash: SimpleNamespace) -> None:
    entries = run(tmp_path, storage)
    lines: list[str] = []
    broker = Broker("192.168.50.2", 1883, mqtt_url="mqtt://admin:pw@127.0.0.1:1883")
    loop = FlashLoop(tmp_path / "out" / "devices.json", "machikit-ws", "wifi-pw", broker,
                     lines.append)
    fake_flash.plugged = [Board("COM3", 0x2E8A, 0x0005, "A1", "pico")]
    for watcher in loop.poll():
        watcher.join(5)
    loop.poll()  # still plugged: nothing happens
    fake_flash.fail = {"B2"}
    fake_flash.plugged.append(Board("COM4", 0x10C4, 0xEA60, "B2", "esp32"))
    loop.poll()
    assert [f[0] for f in fake_flash.flashed] == ["A1"]
    _serial, app, config = fake_flash.flashed[0]
    assert app == "snow" and config["device"] == {
        "town": "ws-town", "name": "snow-01", "user": entries[0]["user"],
        "password": entries[0]["password"]}
    assert config["wifi"]["password"] == "wifi-pw" and config["broker"]["host"] == "192.168.50.2"
    assert any("snow-01 is online" in line for line in lines)
    assert any("port busy" in line for line in lines)

    # restart: a fresh loop reads flashed.json; the failed board is plugged in again
    fake_flash.fail = set()
    again = FlashLoop(tmp_path / "out" / "devices.json", "machikit-ws", "wifi-pw",
                      Broker("192.168.50.2"), lines.append)
    again.poll()
    assert [(f[0], f[2]["device"]["name"]) for f in fake_flash.flashed] == [
        ("A1", "snow-01"), ("B2", "printer-01")]
    assert any("already snow-01" in line for line in lines)
    flashed = json.loads((tmp_path / "out" / "flashed.json").read_text())
    assert flashed == {"A1": "snow-01", "B2": "printer-01"}
