"""Collector counters: logged, and published (retained) for `machikit stats`."""

import argparse
import bisect
import json
import logging
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from machikit.texts import say

log = logging.getLogger("machikit.collector")

STATS_TOPIC = "machikit/sys/collector/{client_id}/stats"


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    db_errors: int = 0
    pending: int = 0
    lag_ms: int = 0  # receive -> commit, worst message of the last batch
    # publish -> commit for messages with a synced clock, this interval
    ages: list[int] = field(default_factory=list, repr=False)

    def snapshot(self, client_id: str, interval_s: float, previous: "Counters | None") -> dict:
        ages = sorted(self.ages)
        self.ages = []
        before = previous.stored + previous.duplicates if previous else 0
        return {
            "client_id": client_id,
            "time_ms": time.time_ns() // 1_000_000,
            **{k: v for k, v in asdict(self).items() if k != "ages"},
            "rate_per_s": round((self.stored + self.duplicates - before) / interval_s, 1),
            "age_ms": _percentiles(ages),
        }


class StatsReporter:
    """Logs and publishes the counters on its own thread, so they keep coming
    while the writer is stuck waiting for the database (when they matter most)."""

    def __init__(self, collector) -> None:
        self.collector = collector
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stats", daemon=True)
        self.previous: Counters | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        interval = self.collector.settings.stats_interval_s
        while not self.stopped.wait(interval):
            self.report(interval)

    def report(self, interval: float) -> dict:
        c = self.collector
        c.counters.pending = c.inbox.qsize()
        client_id = c.settings.mqtt_client_id
        snap = c.counters.snapshot(client_id, interval, self.previous)
        self.previous = Counters(**{k: v for k, v in vars(c.counters).items() if k != "ages"})
        log.info(say("collector_counters", **snap))
        c.client.publish(STATS_TOPIC.format(client_id=client_id), json.dumps(snap), 0, True)
        return snap


# Upper bounds (ms) of the latency histogram: 1 ms steps where the targets are.
AGE_BUCKETS = (*range(1, 21), 25, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000)


def _percentiles(values: list[int]) -> dict:
    """p50/p99/max of this interval, and a histogram so a reader can merge intervals."""
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    hist: dict[str, int] = {}
    for value in values:
        index = bisect.bisect_left(AGE_BUCKETS, value)
        key = str(AGE_BUCKETS[index]) if index < len(AGE_BUCKETS) else "inf"
        hist[key] = hist.get(key, 0) + 1
    return {"p50": pick(0.5), "p99": pick(0.99), "max": values[-1], "count": len(values),
            "hist": hist}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("--json", action="store_true", help="JSONで表示 / print JSON")
    parser.add_argument("--wait", type=float, default=3.0, help="待つ秒数 / seconds to wait")


def read_stats(wait_s: float) -> list[dict]:
    """Every collector's latest counters, from their retained stats messages."""
    from collector.broker import COLLECTOR_USER, has_local_user, local_url
    from collector.mqtt import connect, make_client
    from collector.settings import load_settings, parse_mqtt_url

    settings = load_settings()
    if settings.embedded_broker and not has_local_user(settings.data_dir, COLLECTOR_USER):
        return []  # no server has ever run here; and never create its user from outside
    target = parse_mqtt_url(settings.mqtt_url or local_url(settings))
    client = make_client(target, f"machikit-stats-{time.monotonic_ns() % 100000}",
                         settings.protocol())
    found: dict[str, dict] = {}
    done = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(STATS_TOPIC.format(client_id="+"), 0)
    client.on_message = lambda c, u, m: keep_stats(found, m.topic, m.payload)
    connect(client, target)
    client.loop_start()
    done.wait(wait_s)
    client.loop_stop()
    client.disconnect()
    return list(found.values())


def keep_stats(found: dict[str, dict], topic: str, payload: bytes | bytearray) -> None:
    """Only collectors' counters: whatever else a broker sends must not crash the command."""
    try:
        item = json.loads(payload)
    except ValueError:
        return
    if isinstance(item, dict) and topic == STATS_TOPIC.format(client_id=item.get("client_id")):
        found[topic] = item


def run_stats(args: argparse.Namespace) -> int:
    if args.config:
        import os

        os.environ["MACHIKIT_CONFIG"] = args.config
    stats = read_stats(args.wait)
    if not stats:
        print(say("no_stats"), file=sys.stderr)
        return 1
    for item in stats:
        print(json.dumps(item, ensure_ascii=False) if args.json else
              f"[{item['client_id']}] " + say("collector_counters", **item))
    return 0
