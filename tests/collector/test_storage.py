"""Both storage engines behind one interface: the same tests on SQLite and TimescaleDB."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from collector.storage import Batch, Storage, open_storage
from collector.storage.migrations import migrations
from tests.collector.helpers import fresh_database
from tests.collector.stacks import migrated

T = 1_795_650_000_000  # 2026-11-25T23:40:00Z
DAY = 86_400_000


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        with migrated(f"sqlite:///{tmp_path}/test.db") as store:
            yield store
        return
    with fresh_database(request.getfixturevalue("database_url")) as url, migrated(url) as store:
        yield store


def position(device_id: int, seq: int, time_ms: int = T) -> tuple:
    return (time_ms, device_id, seq, time_ms + 50, True, 42.3, 140.9, None, 8.0, 90.0, 9, 0.8)


def test_migrate_twice_is_harmless(storage: Storage) -> None:
    latest = max(m.version for m in migrations(storage.engine))
    assert storage.migrate() == latest
    assert storage.migrate() == latest


def test_same_seq_and_time_is_stored_once(storage: Storage) -> None:
    bus = storage.add_device("muroran", "bus-01", "bus", public=True)
    first = Batch()
    for seq in range(5):
        first.add("positions", position(bus.id, seq, T + seq))
    assert storage.write(first).stored == 5
    replay = Batch()
    for seq in range(3, 8):  # 3 and 4 again, 5..7 new
        replay.add("positions", position(bus.id, seq, T + seq))
    result = storage.write(replay)
    assert (result.stored, result.duplicates) == (3, 2)
    assert storage.counts()["positions"] == 8


def test_every_table_takes_its_rows(storage: Storage) -> None:
    gauge = storage.add_device("tokamachi", "snow-01", "snow_gauge")
    batch = Batch()
    batch.add("readings", (T, gauge.id, 1, T, True, "snow_depth", 35.2, "cm", "reference"))
    batch.add("events", (T, gauge.id, 2, T, False, "door_open", None, None, "扉が開きました"))
    batch.add("device_status", (T, gauge.id, T, "online", "0.1.0", 3, 1500, -60, 0, 81000,
                                3.7, "power_on", 0, True, None, None))
    batch.add("quarantine", (T, "machikit/v1/x/y/pos", b"\x00\xffnot json", "bad_json", "x"))
    result = storage.write(batch)
    assert (result.stored, result.quarantined) == (3, 1)
    counts = storage.counts()
    assert [counts[t] for t in ("readings", "events", "device_status", "quarantine")] == [1] * 4


def test_devices_are_found_by_town_and_name(storage: Storage) -> None:
    bus = storage.add_device("muroran", "bus-01", "bus", public=True, label="バス1号車")
    storage.add_device("noboribetsu", "bus-01", "bus")
    found = storage.find_devices({("muroran", "bus-01"), ("muroran", "nobody")})
    assert found == {("muroran", "bus-01"): bus}
    assert found[("muroran", "bus-01")].label == "バス1号車"


def test_boot_start_is_fixed_at_first_sight(storage: Storage) -> None:
    stall = storage.add_device("muroran", "stall-07", "stall")
    first = storage.boot_starts({(stall.id, 4): T})
    later = storage.boot_starts({(stall.id, 4): T + 5000, (stall.id, 5): T + 9000})
    assert first == {(stall.id, 4): T}
    assert later == {(stall.id, 4): T, (stall.id, 5): T + 9000}


def test_retention_removes_only_old_data(storage: Storage) -> None:
    bus = storage.add_device("muroran", "bus-01", "bus")
    batch = Batch()
    batch.add("positions", position(bus.id, 1, T - 40 * DAY))
    batch.add("positions", position(bus.id, 2, T - 1 * DAY))
    storage.write(batch)
    storage.apply_retention({"positions": 30, "readings": 0}, now_ms=T)
    assert storage.counts()["positions"] == 1


def test_timescaledb_is_the_apache_edition_with_hypertables(database_url: str) -> None:
    with fresh_database(database_url) as url:
        store = open_storage(url)
        store.migrate()
        info = store.info()
        store.close()
        assert info["engine"] == "postgres" and info["timescaledb"]
        assert info["license"] == "apache"  # nothing here needs the Timescale License
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert tables == {"positions", "readings", "events", "device_status", "quarantine"}


def test_recent_rows_come_newest_first_with_device_names(storage: Storage) -> None:
    bus = storage.add_device("muroran", "bus-01", "bus")
    batch = Batch()
    for seq in range(3):
        batch.add("positions", position(bus.id, seq, T + seq * 1000))
    storage.write(batch)
    rows = storage.recent("positions", 2)
    assert [(r["device"], r["seq"], r["time"]) for r in rows] == [
        ("bus-01", 2, T + 2000), ("bus-01", 1, T + 1000)]


def test_a_big_backlog_batch_with_replays_and_poison(storage: Storage) -> None:
    """Over pg_write.SMALL_BATCH rows: the COPY path on TimescaleDB."""
    bus = storage.add_device("muroran", "bus-01", "bus")
    batch = Batch()
    for seq in range(600):
        batch.add("positions", position(bus.id, seq % 500, T + seq % 500))  # 100 replays
    batch.add("quarantine", (T, "machikit/v1/x/y/pos", b"{", "bad_json", None))
    result = storage.write(batch)
    assert (result.stored, result.duplicates, result.quarantined) == (500, 100, 1)
    assert storage.counts()["positions"] == 500
