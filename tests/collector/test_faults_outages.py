"""The collector killed at the two moments that matter, and the database away for a minute.

The collector runs as its own process (`machikit collect`, TimescaleDB, Mosquitto), as
in production. Its moments are made exact from outside, never by a hook in the product:
- before commit: a lock on positions keeps its INSERT waiting in the database, then the
  collector is killed and its uncommitted transaction is ended with it;
- after commit, before the PUBACKs: the collector is frozen (SIGSTOP) while its INSERT
  waits, the lock is released so the INSERT commits, then the frozen collector is killed:
  rows in the table, PUBACKs never sent.
Afterwards: rows of the town counted exactly, no (device, seq) twice, and the restarted
collector's counters (published for `machikit stats`) say what it stored and recognised.
"""

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.collector.faults_helpers import (
    SUMMARY,
    Sender,
    Tally,
    database_outage,
    positions_locked,
    send_positions,
    settle,
    terminate_backend,
    town_rows,
    town_stored,
    waiting_writer,
)
from tests.collector.helpers import Publisher, wait_until
from tests.collector.test_faults import summary  # noqa: F401 (prints this module's counts too)
from tests.collector.test_resilience import CollectorProcess, latest_stats, setup

pytestmark = pytest.mark.slow


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stats_since(mqtt_url: str, town: str, since_ms: int, timeout: float = 30.0) -> dict:
    """The collector's counters as published after since_ms, once they stop changing."""
    found: list[dict] = [{}]

    def steady() -> bool:
        before = found[0]
        found[0] = latest_stats(mqtt_url, f"collector-{town}")
        same = {k: before.get(k) for k in ("received", "stored", "duplicates")} == \
            {k: found[0].get(k) for k in ("received", "stored", "duplicates")}
        return found[0].get("time_ms", 0) > since_ms and found[0]["pending"] == 0 and same

    assert wait_until(steady, timeout=timeout, every=1.1), f"no steady counters: {found[0]}"
    return found[0]


def db_of(collector: CollectorProcess) -> str:
    return collector.env["MACHIKIT_DATABASE_URL"]


def first_fifty(pub: Publisher, town: str, db_url: str) -> None:
    """Fifty positions stored and acknowledged before the fault."""
    send_positions(pub, town, range(50))
    assert settle(lambda: town_rows(db_url, town), (50, 0)) == (50, 0)


def test_killed_before_commit(tmp_path: Path, database_url: str, mqtt_url: str) -> None:
    with setup("postgres", tmp_path, database_url, mqtt_url) as (collector, pub, _, town):
        db_url = db_of(collector)
        first_fifty(pub, town, db_url)
        with positions_locked(db_url):
            send_positions(pub, town, range(50, 80))
            writer = waiting_writer(db_url)  # the batch is in the database, not committed
            collector.kill()
            terminate_backend(db_url, writer)  # its transaction ends with it: no commit
        assert town_rows(db_url, town) == (50, 0)
        restarted = now_ms()
        collector.start()
        assert pub.all_acknowledged()
        assert settle(lambda: town_rows(db_url, town), (80, 0)) == (80, 0)
        stats = stats_since(mqtt_url, town, restarted)
        # every one of the 30 came again, and none had been stored
        assert (stats["received"], stats["stored"], stats["duplicates"]) == (30, 30, 0)
        SUMMARY.append(Tally("collector SIGKILL before commit", 80, 80, 0))


def test_killed_after_commit_before_acks(tmp_path: Path, database_url: str,
                                         mqtt_url: str) -> None:
    with setup("postgres", tmp_path, database_url, mqtt_url) as (collector, pub, _, town):
        db_url = db_of(collector)
        first_fifty(pub, town, db_url)
        assert collector.proc is not None
        with positions_locked(db_url):
            send_positions(pub, town, range(50, 80))
            waiting_writer(db_url)
            os.kill(collector.proc.pid, signal.SIGSTOP)  # frozen: it can send no PUBACK
        # The lock is gone: the waiting INSERT commits while its collector is frozen.
        assert wait_until(lambda: town_rows(db_url, town)[0] > 50, timeout=10)
        time.sleep(1)  # the whole batch: one statement, one commit
        committed = town_rows(db_url, town)[0]
        assert 50 < committed <= 80
        collector.kill()
        restarted = now_ms()
        collector.start()
        assert pub.all_acknowledged()
        assert settle(lambda: town_rows(db_url, town), (80, 0)) == (80, 0)
        stats = stats_since(mqtt_url, town, restarted)
        # all 30 came again; those already committed were recognised, not stored twice
        in_flight = committed - 50
        assert (stats["received"], stats["stored"], stats["duplicates"]) == \
            (30, 30 - in_flight, in_flight)
        SUMMARY.append(Tally(f"collector SIGKILL after commit of {in_flight}, before acks",
                             80, 80, in_flight))


def test_database_away_for_a_minute(tmp_path: Path, database_url: str, mqtt_url: str) -> None:
    """Devices keep sending (50/s) while the database refuses every connection for 60 s:
    the broker keeps what the collector cannot take, the collector holds at most
    receive_maximum messages, and it recovers by itself."""
    with setup("postgres", tmp_path, database_url, mqtt_url) as (collector, pub, _, town):
        db_url = db_of(collector)
        assert collector.proc is not None
        memory = psutil.Process(collector.proc.pid)
        rss_before = memory.memory_info().rss
        most_pending, most_rss = 0, rss_before
        with Sender(pub, town, rate=50) as sender:
            time.sleep(2)
            with database_outage(database_url, db_url):
                outage_end = time.monotonic() + 60
                while time.monotonic() < outage_end:
                    time.sleep(5)
                    stats = latest_stats(mqtt_url, f"collector-{town}")
                    most_pending = max(most_pending, stats["pending"])
                    most_rss = max(most_rss, memory.memory_info().rss)
            back = time.monotonic()
            time.sleep(3)  # still sending after the database is back
        sent = sender.sent
        assert pub.all_acknowledged(timeout=60)
        assert settle(lambda: town_rows(db_url, town), (sent, 0), timeout=90) == (sent, 0)
        recovered_s = time.monotonic() - back
        stats = stats_since(mqtt_url, town, 0)
        assert stats["stored"] == town_stored(db_url, town)  # its counters agree
        assert stats["received"] == stats["stored"] + stats["duplicates"]
        assert stats["db_errors"] >= 5 and most_pending <= 1000
        assert most_rss - rss_before < 50 * 2**20
        assert collector.alive()
        assert "Cannot reach the database" in (tmp_path / "collector.log").read_text("utf-8")
        SUMMARY.append(Tally(f"database away 60 s (most pending {most_pending}, "
                             f"RSS +{(most_rss - rss_before) // 2**20} MiB, all stored "
                             f"{recovered_s:.0f} s after)", sent, sent, stats["duplicates"]))
        print(json.dumps({"sent": sent, "most_pending": most_pending,
                          "rss_growth": most_rss - rss_before, "recovered_s": recovered_s}))
