"""The server as production runs it, for `bench live` and `bench api`.

A fresh database with a public fleet of buses, the collector (`machikit
collect`) and the web API (`machikit api`) as two processes, so each one's CPU
is its own; where there is no `api` command, `machikit serve` runs both in one.
Everything is removed afterwards, also on Ctrl-C (the ingest bench's Run).
"""

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from collector.bench import profile
from collector.bench.cpu import CpuMeter
from collector.bench.plan import Plan
from collector.bench.publishers import Publishers, make_jobs
from collector.bench.run import BenchError, Run, first_child
from collector.bench.webplan import WebPlan
from collector.bench.workers import CollectorWorker, collector_env
from collector.storage import open_storage

HOST = "127.0.0.1"
API_PREFIX = "/api/v1/towns/{town}"


def has_api_command() -> bool:
    from machikit.cli import COMMANDS

    return "api" in COMMANDS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Stack:
    """Enter: everything runs and the API answers. Exit: everything is gone."""

    def __init__(self, plan: WebPlan) -> None:
        self.plan = plan
        self.split = has_api_command()
        self.run = Run(Plan(plan.database_url, plan.mqtt_url, loads=[], drain=False,
                            seconds=plan.seconds, workers=[1], backlog=0, naive_backlog=0,
                            fleet=plan.fleet, publishers=1, collector_env=plan.server_env))
        self.port = free_port()
        self.api: CollectorWorker | None = None
        self.profile_to: Path | None = None

    def __enter__(self) -> "Stack":
        self.run.__enter__()
        try:
            self._start()
        except BaseException as err:
            self.run.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def __exit__(self, kind, error, tb) -> None:
        if kind is not None and kind is not KeyboardInterrupt and self.api:
            print(f"--- API ---\n{self.api.log_tail()}")
        self.run.__exit__(kind, error, tb)

    @property
    def town(self) -> str:
        return self.run.town

    def path(self, tail: str) -> str:
        return API_PREFIX.format(town=self.town) + tail

    def _start(self) -> None:
        run = self.run
        _register_public(run.db_url, run.town, run.vehicles)
        # every bench listener comes from this one address; in a town each phone has its own
        web = {"MACHIKIT_WEB__HOST": HOST, "MACHIKIT_WEB__PORT": str(self.port),
               "MACHIKIT_WEB__MAX_LIVE_PER_ADDRESS": "1000000",
               **self.plan.server_env}
        (collector,) = run.add_workers(1, None)
        if not self.split:  # `serve`: collector and API in one process
            collector.command = "serve"
            collector.env.update(web)
            if self.plan.profile_dir:
                self._profile(collector)
        run.start_workers()
        run.wait_ready()
        if self.split:
            client_id = f"{run.town}-api"
            env = collector_env(run.db_url, self.plan.mqtt_url, run.town, client_id, None,
                                run.dir, web)
            workers = ["--workers", str(self.plan.api_workers)] if self.plan.api_workers > 1 else []
            self.api = CollectorWorker(client_id, env, run.dir / "api.log", command="api",
                                       args=workers)
            if self.plan.profile_dir:
                self._profile(self.api)
            run.stack.callback(self.api.stop)
            self.api.start()
        else:
            self.api = collector
        self._wait_health()

    def _profile(self, worker: CollectorWorker) -> None:
        assert self.plan.profile_dir is not None
        self.plan.profile_dir.mkdir(parents=True, exist_ok=True)
        self.profile_to = self.plan.profile_dir / f"api-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        worker.wrapper = profile.wrapper(self.profile_to)

    def api_pid(self) -> int:
        assert self.api is not None
        return first_child(self.api.pid) if self.api.wrapper else self.api.pid

    def collector_pid(self) -> int:
        return self.run.worker_pids()[0]

    def _wait_health(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.api is not None
            if not self.api.alive():
                raise BenchError("the API process stopped:\n" + self.api.log_tail())
            with contextlib.suppress(OSError):
                if get_json(self.port, "/api/v1/health") is not None:
                    return
            time.sleep(0.2)
        raise BenchError("the API did not answer /api/v1/health in time")

    def wait_vehicles(self, count: int, timeout: float) -> int:
        """Until the vehicles endpoint shows `count` vehicles (every bus has sent once)."""
        deadline, shown = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            found = get_json(self.port, self.path("/vehicles")) or {}
            shown = len(found.get("features", []))
            if shown >= count:
                break
            time.sleep(0.5)
        return shown

    def fleet(self, seconds: float) -> Publishers:
        """The buses, connected and waiting for go(): one position each every interval."""
        plan = self.plan
        jobs = make_jobs(plan.mqtt_url, self.town, self.run.vehicles, 1,
                         rate=plan.fleet / plan.interval_s, seconds=seconds)
        return self.run.publishers(jobs)

    def meter(self) -> CpuMeter:
        """CPU of the collector, API, Mosquitto and PostgreSQL (one process if `serve`)."""
        meter = self.run.meter()
        if self.split:
            meter.add("collector", self.collector_pid())
            meter.add("api", self.api_pid())
        else:
            meter.parts["serve"] = meter.parts.pop("collector")
            meter.add("serve", self.api_pid())
        return meter

    def callback(self, func, *args) -> None:
        self.run.stack.callback(func, *args)


def _register_public(db_url: str, town: str, vehicles: list[str]) -> None:
    """The fleet as public buses, no service hours or depots: always shown."""
    storage = open_storage(db_url)
    try:
        for i, name in enumerate(vehicles, 1):
            storage.add_device(town, name, "bus", True, f"市内線バス{i}号車", settings={})
    finally:
        storage.close()


def get_json(port: int, path: str, timeout: float = 5.0) -> dict | None:
    """The body of a 200 answer; None for any other status."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError:
        return None


class MemoryWatch:
    """The API process's resident memory, sampled every second (its peak)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.now()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self) -> int:
        """The process and its children (`machikit api --workers N`)."""
        total = 0
        with contextlib.suppress(psutil.Error):
            for proc in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self.stopped.wait(1.0):
            self.peak = max(self.peak, self.now())

    def stop(self) -> dict:
        self.stopped.set()
        self.thread.join(5)
        fds = 0
        with contextlib.suppress(psutil.Error):
            for proc in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    fds += proc.num_fds()
        return {"rss_mb": round(self.now() / 2**20, 1), "peak_rss_mb": round(self.peak / 2**20, 1),
                "open_fds": fds}
