"""Faults on the real services, each ending in exact counts.

After every fault: each message the broker acknowledged is stored exactly once (the
rows of the test's town are counted, no (device, seq) is there twice), and the
collector's own counters say the same. The collector killed mid-write, the database
away for a minute and the full disk are in test_faults_outages.py; device-side faults
(clock jumps, replays, duplicates) and broker-side ones (kicks, the embedded broker's
restart) are here. The module prints a summary at the end (faults, sent, stored).
"""

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.serve import Server
from collector.settings import Settings
from tests.collector.faults_helpers import (
    SUMMARY,
    Tally,
    fill,
    quarantined,
    send_positions,
    small_disk,
    town_rows,
)
from tests.collector.helpers import unique_town, wait_until
from tests.collector.stacks import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """The counts the closing note needs, printed even without -s."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "fault suite: fault / sent / stored / duplicates / quarantined"]
    lines += [f"  {t.fault}: {t.sent} / {t.stored} / {t.duplicates} / {t.quarantined}"
              for t in SUMMARY]
    total = [sum(getattr(t, k) for t in SUMMARY)
             for k in ("sent", "stored", "duplicates", "quarantined")]
    lines.append(f"  {len(SUMMARY)} faults: {total[0]} sent, {total[1]} stored, "
                 f"{total[2]} duplicates recognised, {total[3]} quarantined")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk (tmpfs) needs root")


def sqlite_server(data_dir: Path, mqtt_url: str, town: str) -> Server:
    """`machikit serve` with the town's Mosquitto and the SQLite file in data_dir."""
    settings = Settings(data_dir=data_dir, mqtt_url=mqtt_url, town=town,
                        mqtt_client_id=f"collector-{town}", stats_interval_s=1,
                        web={"enabled": False})
    return Server(settings)


def test_full_disk_holds_acks_and_recovers(tmp_path: Path, mqtt_url: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """SQLite on a disk that fills up: no ack, no loss, no crash, no quarantine of good
    messages; a clear message in the log; everything stored once space is freed."""
    need_root()
    town = unique_town()
    # 16 MB: once space is freed, SQLite's WAL may grow to 4 MB before it is reused
    with small_disk(tmp_path / "disk", "16m") as disk:
        server = sqlite_server(disk, mqtt_url, town)
        server.start()
        stack = Stack(server, town)
        db_url = server.settings.database()
        try:
            stack.storage.add_device(town, "bus-01", "bus")
            pub = stack.publisher("bus")
            send_positions(pub, town, range(100))
            assert wait_until(lambda: town_rows(db_url, town)[0] == 100)

            filler = fill(disk)
            with caplog.at_level(logging.ERROR, logger="machikit.collector"):
                # ~1 MB of rows: far more than the WAL file already has room for
                send_positions(pub, town, range(100, 3100))
                assert pub.all_acknowledged(), "the broker must take them all"
                assert wait_until(lambda: "disk is full" in caplog.text, timeout=20)
                time.sleep(3)  # a few retries while the disk stays full
                rows_while_full = town_rows(db_url, town)[0]
                assert server.collector is not None and not server.failed
                assert server._writer is not None and server._writer.is_alive()
            assert "ディスクがいっぱい" in caplog.text  # the Japanese half is there too
            assert rows_while_full < 3100
            assert stack.counters.quarantined == 0

            filler.unlink()
            assert wait_until(lambda: town_rows(db_url, town)[0] == 3100, timeout=60)
            time.sleep(1)
            assert town_rows(db_url, town) == (3100, 0)
            assert quarantined(db_url) == 0
            c = stack.counters
            assert (c.stored, c.quarantined) == (3100, 0)
            assert c.stored + c.duplicates == c.received
            SUMMARY.append(Tally("SQLite disk full (tmpfs)", 3100, 3100, c.duplicates))
        finally:
            stack.close()
