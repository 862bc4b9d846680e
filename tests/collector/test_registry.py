"""The device registry: credentials stored only as hashes, on both engines, and the CLI."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import registry
from collector.registry import RegistryError, acl_text, add_device, revoke, write_broker_files
from collector.storage import Storage
from machikit import credentials
from tests.collector.helpers import fresh_database, unique_town
from tests.collector.stacks import migrated
from tests.conftest import REPO


@pytest.fixture(scope="module")
def postgres_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/registry.db"
    else:
        url = request.getfixturevalue("postgres_url")
    with migrated(url) as store:
        yield store


def test_add_keeps_only_a_hash_of_the_password(storage: Storage) -> None:
    town = unique_town()
    new = add_device(storage, town, "bus-01", "bus", public=True,
                     settings={"service_hours": ["mon-fri 06:30-21:30"]})
    assert (new.user, new.kind, new.public) == (f"{town}.bus-01", "bus", True)
    [account] = storage.device_accounts(town)
    assert account.mqtt_user == new.user
    assert account.password_hash and account.password_hash.startswith("$7$")
    assert new.password not in account.password_hash
    assert credentials.verify_password(new.password, account.password_hash)
    assert account.device.settings == {"service_hours": ["mon-fri 06:30-21:30"]}


def test_bad_input_is_refused(storage: Storage) -> None:
    town = unique_town()
    add_device(storage, town, "gauge-1", "snow_gauge")
    for args in ((town, "gauge-1", "snow_gauge"), (town, "Bad Name", "sensor"),
                 ("a.b", "x", "sensor"), (town, "x", "rocket")):
        with pytest.raises(RegistryError):
            add_device(storage, *args)
    with pytest.raises(RegistryError):
        revoke(storage, town, "nobody")


def test_revoke_new_password_and_readd(storage: Storage) -> None:
    town = unique_town()
    first = add_device(storage, town, "stall-1", "stall")
    second = registry.new_password(storage, town, "stall-1")
    [account] = storage.device_accounts(town)
    assert account.password_hash
    assert not credentials.verify_password(first.password, account.password_hash)
    assert credentials.verify_password(second, account.password_hash)
    revoke(storage, town, "stall-1")
    assert storage.device_accounts(town)[0].revoked_ms
    assert storage.find_devices({(town, "stall-1")}) == {}  # the collector refuses it too
    again = add_device(storage, town, "stall-1", "stall")  # a revoked device may come back
    assert storage.device_accounts(town)[0].revoked_ms is None
    assert again.password not in (first.password, second)


def test_broker_files_leave_out_revoked_devices(storage: Storage, tmp_path: Path) -> None:
    town = unique_town()
    kept = add_device(storage, town, "bus-01", "bus")
    gone = add_device(storage, town, "bus-02", "bus")
    revoke(storage, town, "bus-02")
    passwd, acl = write_broker_files(storage, tmp_path / "broker", {"machikit-collector": "h"})
    users = credentials.read_password_file(passwd)
    assert kept.user in users and gone.user not in users and users["machikit-collector"] == "h"
    text = acl.read_text()
    assert text == acl_text(storage.device_accounts())
    assert f"topic write machikit/v1/{town}/bus-01/pos" in text
    assert f"topic read machikit/v1/{town}/bus-01/cmd" in text
    assert gone.user not in text
    assert oct(passwd.stat().st_mode & 0o777) == oct(acl.stat().st_mode & 0o777) == "0o600"


def machikit(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MACHIKIT_DATABASE_URL": f"sqlite:///{db}",
           "MACHIKIT_DATA_DIR": str(db.parent / "data"), **env}
    return subprocess.run([sys.executable, "-m", "machikit", "device", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def printed_password(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("パスワード"))
    return line.rsplit(": ", 1)[1].strip()


def test_cli_add_list_show_revoke(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    added = machikit(db, "add", "t1", "bus-01", "--kind", "bus", "--public",
                     "--service-hours", "mon-fri 06:30-21:30", "--depot", "35.1,139.2,150")
    assert added.returncode == 0, added.stderr
    assert "t1.bus-01" in added.stdout and "パスワード" in added.stdout
    password = printed_password(added.stdout)
    assert len(password) == 20 and password not in db.read_bytes().decode("latin-1")
    assert "t1.bus-01" in machikit(db, "list").stdout
    shown = machikit(db, "show", "t1", "bus-01").stdout
    assert "mon-fri 06:30-21:30" in shown and "'radius_m': 150.0" in shown
    assert machikit(db, "revoke", "t1", "bus-01").returncode == 0
    assert "無効/revoked" in machikit(db, "list", "--town", "t1").stdout
    files = machikit(db, "broker-files", "--out", str(tmp_path / "b"))
    assert files.returncode == 0 and "t1.bus-01" not in (tmp_path / "b" / "passwd").read_text()


def test_the_advice_after_a_change_fits_the_broker_in_use(tmp_path: Path) -> None:
    """Mosquitto needs the files and a reload; the embedded broker re-reads its own files,
    so once they exist there a change is applied at once (and the advice says so)."""
    db = tmp_path / "cli.db"
    town_broker = machikit(db, "add", "t1", "bus-01", "--kind", "bus",
                           MACHIKIT_MQTT_URL="mqtt://machikit-collector:pw@broker.example:1883")
    assert "sudo systemctl reload mosquitto" in town_broker.stdout
    embedded = tmp_path / "data" / "broker"
    first = machikit(db, "add", "t1", "bus-02", "--kind", "bus")
    assert f"broker-files --out {embedded}" in first.stdout and "reload" not in first.stdout
    assert not (embedded / "passwd").exists()  # nothing written behind the user's back
    files = machikit(db, "broker-files", "--out", str(embedded))
    assert "no restart" in files.stdout and "SIGHUP" not in files.stdout
    added = machikit(db, "add", "t1", "bus-03", "--kind", "bus")
    assert "Applied to the embedded broker" in added.stdout
    users = credentials.read_password_file(embedded / "passwd")
    assert credentials.verify_password(printed_password(added.stdout), users["t1.bus-03"])
    assert machikit(db, "revoke", "t1", "bus-03").returncode == 0
    assert "t1.bus-03" not in credentials.read_password_file(embedded / "passwd")


@pytest.mark.parametrize("args", [
    ("add", "t1", "bus-01", "--kind", "bus"),  # duplicate
    ("add", "t1", "Bus", "--kind", "bus"),
    ("add", "t1", "b2", "--kind", "car"),
    ("add", "t1", "b2", "--kind", "bus", "--depot", "35,139"),
    ("add", "t1", "b2", "--kind", "bus", "--service-hours", "always"),
    ("show", "t1", "nobody"),
    ("revoke", "t1", "nobody"),
    ("password", "t1", "nobody"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "cli.db"
    assert machikit(db, "add", "t1", "bus-01", "--kind", "bus").returncode == 0
    result = machikit(db, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and " / " in result.stderr
