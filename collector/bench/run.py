"""One measurement's surroundings: a fresh database and town, its sessions,
workers and publishers, all removed afterwards — also on Ctrl-C or failure."""

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

from collector.bench import profile
from collector.bench.bed import (
    Sessions,
    clear_retained,
    connected_client,
    count_rows,
    fresh_database,
    prepare,
    subscription,
    unique_town,
    vehicle_names,
)
from collector.bench.cpu import CpuMeter, server_process
from collector.bench.plan import Plan
from collector.bench.publishers import Publishers
from collector.bench.workers import CollectorWorker, StatsListener, collector_env
from collector.stats import STATS_TOPIC
from machikit import contract


class BenchError(Exception):
    """A run could not be measured (the message says why)."""


class Run:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.stack = contextlib.ExitStack()
        self.town = unique_town()
        self.vehicles = vehicle_names(plan.fleet)
        self.workers: list[CollectorWorker] = []
        self.stats: StatsListener | None = None

    def __enter__(self) -> "Run":
        try:
            self._open()
        except BaseException:
            self.stack.close()
            raise
        return self

    def _open(self) -> None:
        s = self.stack
        self.db_url = s.enter_context(fresh_database(self.plan.database_url))
        prepare(self.db_url, self.town, self.plan.fleet)
        self.conn = s.enter_context(psycopg.connect(self.db_url, autocommit=True))
        self.dir = Path(s.enter_context(tempfile.TemporaryDirectory(prefix="machikit-bench-")))
        self.sessions = Sessions(self.plan.mqtt_url)
        s.callback(self.sessions.forget_all)  # last: nothing may still be connected

    def __exit__(self, kind, error, tb) -> None:
        try:
            if kind is not None and kind is not KeyboardInterrupt:
                for worker in self.workers:  # the logs go with the temp dir: show them now
                    print(f"--- {worker.client_id} ---\n{worker.log_tail()}", file=sys.stderr)
        finally:
            self.stack.close()

    # --- collector workers ------------------------------------------------------

    def add_workers(self, count: int, group: str | None, profile_to: Path | None = None
                    ) -> list[CollectorWorker]:
        """Sessions first (they queue from then on), then the stats listener;
        the workers themselves start with start_workers()."""
        ids = [f"{self.town}-w{i + 1}" for i in range(count)]
        for client_id in ids:
            self.sessions.create(client_id, subscription(self.town, group))
            env = collector_env(self.db_url, self.plan.mqtt_url, self.town, client_id, group,
                                self.dir, self.plan.collector_env)
            wrap = profile.wrapper(profile_to) if profile_to else None
            self.workers.append(CollectorWorker(client_id, env, self.dir / f"{client_id}.log",
                                                wrap))
        self.stats = StatsListener(self.plan.mqtt_url, ids)
        self.stack.callback(clear_retained, self.plan.mqtt_url,
                            [STATS_TOPIC.format(client_id=c) for c in ids])
        self.stack.callback(self.stats.close)
        self.stack.callback(self._stop_workers)  # first, or they publish stats again
        return self.workers

    def start_workers(self) -> None:
        for worker in self.workers:
            worker.start()

    def _stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def worker_pids(self) -> list[int]:
        """The collector processes themselves (under py-spy: its child)."""
        pids = []
        for worker in self.workers:
            pid = worker.pid
            if worker.wrapper:
                pid = first_child(pid)
            pids.append(pid)
        return pids

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a probe (a status message) is stored: the worker listens and writes."""
        client = connected_client(self.plan.mqtt_url, f"{self.town}-probe")
        topic = contract.topic(self.town, self.vehicles[0], contract.STATUS)
        deadline = time.monotonic() + timeout
        try:
            while count_rows(self.conn, "device_status") == 0:
                if time.monotonic() > deadline or not all(w.alive() for w in self.workers):
                    raise BenchError("collector not ready:\n" + self.workers[0].log_tail())
                client.publish(topic, contract.encode(contract.status("online")), qos=1)
                pause = time.monotonic() + 0.5
                while time.monotonic() < pause:  # loop() returns early on any packet
                    client.loop(0.1)
        finally:
            client.disconnect()

    # --- publishers, CPU and rows ---------------------------------------------------

    def publishers(self, jobs: list) -> Publishers:
        pubs = Publishers(jobs)
        self.stack.callback(pubs.stop)
        pubs.start()
        return pubs

    def meter(self) -> CpuMeter:
        meter = CpuMeter()
        meter.add("mosquitto", server_process(self.plan.mqtt_url))
        meter.add("postgres", server_process(self.plan.database_url))
        meter.add("collector", None)
        return meter

    def wait_rows(self, expected: int, timeout: float, every: float = 0.5) -> int:
        """Polls count(*) (cheap enough at 2/s); exact times come from received_at."""
        deadline = time.monotonic() + timeout
        rows = count_rows(self.conn)
        while rows < expected and time.monotonic() < deadline:
            if self.workers and not any(w.alive() for w in self.workers):
                break
            time.sleep(every)
            rows = count_rows(self.conn)
        return rows

    def rows_report(self, expected: int) -> dict:
        time.sleep(0.5)  # a copy stored twice would show up now (it cannot: unique key)
        rows, quarantined = count_rows(self.conn), count_rows(self.conn, "quarantine")
        return {"expected": expected, "rows": rows, "quarantined": quarantined,
                "exactly_once": rows == expected and quarantined == 0}

    def receive_span(self) -> tuple[float, float]:
        """First and last receive time (Unix s) over the stored positions."""
        row = self.conn.execute(
            "SELECT extract(epoch FROM min(received_at)), extract(epoch FROM max(received_at))"
            " FROM positions").fetchone()
        assert row is not None and row[0] is not None
        return float(row[0]), float(row[1])

    def receive_latency(self) -> dict:
        """publish → receive, exact over every row (device time t = publish time)."""
        row = self.conn.execute(
            "SELECT percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY d), max(d)"
            " FROM (SELECT extract(epoch FROM received_at - time) * 1000 AS d"
            " FROM positions) x").fetchone()
        assert row is not None
        (p50, p99), worst = row[0] or (None, None), row[1]
        return {"p50": _ms(p50), "p99": _ms(p99), "max": _ms(worst)}


def _ms(value) -> float | None:
    return None if value is None else round(float(value), 1)


def first_child(pid: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(pid).children()
        if children:
            return children[0].pid
        time.sleep(0.05)
    raise BenchError(f"process {pid} started no collector")
