"""`machikit bench soak`: a town's ordinary day, compressed into an hour, with
one broker restart and one collector crash on the way.

The production shape (stack.py): the collector and the web API as their own
processes, TimescaleDB from the test bed and a Mosquitto of the soak's own
(broker.py, so restarting it disturbs nobody else). Vehicles send positions,
sensors readings (devices.py); viewers hold the live stream open (crowd.py,
probe.py) and some poll the vehicles list like the map page does when its
stream is down (loadgen.py). At 1/3 the broker restarts, at 2/3 the collector
is SIGKILLed and started again, as systemd would.

The verdict: every message the broker acknowledged is stored exactly once.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from collector.bench import progress
from collector.bench.plan import numbers, service_url
from machikit.texts import say

RESTART_AFTER_S = 5.0  # RestartSec=5 in the project's systemd units
BASELINE_S = 60.0  # the first minute: before any fault, the yardstick
RECOVERY_TIMEOUT_S = 180.0
STORE_TIMEOUT_S = 180.0


@dataclass
class SoakPlan:
    database_url: str
    duration_s: float = 3600.0
    vehicles: int = 200
    vehicle_every_s: float = 5.0
    sensors: int = 50
    sensor_every_s: float = 60.0
    viewers: int = 500
    pollers: int = 100  # of the viewers, also polling the vehicles list
    poll_every_s: float = 10.0  # the map page's POLL_EVERY_MS
    faults: bool = True
    json_path: Path | None = None
    command: str = ""

    @property
    def baseline_s(self) -> float:
        """The first minute, or less if the first fault comes earlier."""
        return min(BASELINE_S, self.duration_s / 3 - 1)


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--duration", type=float, default=3600.0, help="秒数 / seconds the town runs")
    add("--vehicles", type=int, default=200, help="車両の台数 / vehicles")
    add("--vehicle-every", type=float, default=5.0,
        help="車両の送信間隔（秒） / seconds between a vehicle's positions")
    add("--sensors", type=int, default=50, help="センサーの台数 / sensors")
    add("--sensor-every", type=float, default=60.0,
        help="センサーの送信間隔（秒） / seconds between a sensor's readings")
    add("--viewers", type=int, default=500,
        help="ライブ配信を見る人数 / viewers holding the live stream open")
    add("--pollers", type=int, default=100,
        help="そのうち車両一覧も取得する人数 / of them, also polling the vehicles list")
    add("--poll-every", type=float, default=10.0,
        help="一覧を取得する間隔（秒） / seconds between a poller's GETs")
    add("--no-faults", action="store_true",
        help="再起動と強制終了をしない / no broker restart, no collector kill")
    add("--database-url", help="PostgreSQL URL (CREATEDB 権限 / with CREATEDB)")
    add("--json", help="結果をJSONで保存 / write the report as JSON")


def soak_plan_from_args(args: argparse.Namespace, command: str = "") -> SoakPlan:
    def whole(value: float, option: str) -> int:
        return 0 if value == 0 else numbers(str(value), option)[0]

    return SoakPlan(
        database_url=args.database_url or service_url("MACHIKIT_TEST_DATABASE_URL"),
        duration_s=float(numbers(str(args.duration), "--duration")[0]),
        vehicles=whole(args.vehicles, "--vehicles"), vehicle_every_s=args.vehicle_every,
        sensors=whole(args.sensors, "--sensors"), sensor_every_s=args.sensor_every,
        viewers=whole(args.viewers, "--viewers"), pollers=whole(args.pollers, "--pollers"),
        poll_every_s=args.poll_every, faults=not args.no_faults,
        json_path=Path(args.json) if args.json else None, command=command)


def run_soak(args: argparse.Namespace, command: str) -> int:
    from collector.bench.soakreport import render

    plan = soak_plan_from_args(args, command)
    report = soak(plan)
    print(render(report))
    if plan.json_path:
        plan.json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                                  encoding="utf-8", newline="\n")
        print(say("bench_saved", path=plan.json_path))
    return 0 if report["verdict"]["exactly_once"] else 1


def soak(plan: SoakPlan) -> dict:
    """Runs the town for plan.duration_s; everything is removed afterwards."""
    from collector.bench.broker import SoakBroker
    from collector.bench.crowd import raise_nofile
    from collector.bench.stack import Stack
    from collector.bench.web import environment
    from collector.bench.webplan import WebPlan

    nofile = raise_nofile()
    report: dict = {"command": plan.command, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "plan": {k: v for k, v in vars(plan).items()
                             if k not in ("database_url", "json_path", "command")},
                    "machine": {"cpus": os.cpu_count(), "load_start": _load()}}
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(SoakBroker())
        web = WebPlan(plan.database_url, broker.url, seconds=plan.duration_s,
                      fleet=plan.vehicles, interval_s=plan.vehicle_every_s,
                      server_env=_server_env(plan))
        report["environment"] = environment(web, nofile)
        server = stack.enter_context(Stack(web))
        report["town"], report["database"] = server.town, server.run.db_url.rsplit("/", 1)[1]
        town = Town(plan, broker, server, stack)
        report.update(town.live())
        report["machine"]["load_end"] = _load()
    return report


def _server_env(plan: SoakPlan) -> dict[str, str]:
    """Here every viewer comes from 127.0.0.1; in a town each has its own address."""
    from collector.settings import Web

    if "max_live_per_address" not in Web.model_fields:
        return {}
    return {"MACHIKIT_WEB__MAX_LIVE_PER_ADDRESS": str(plan.viewers + 10)}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Town:
    """Everything around the running server: devices, viewers, faults, the tally."""

    def __init__(self, plan: SoakPlan, broker, server, stack: contextlib.ExitStack) -> None:
        self.plan, self.broker, self.server, self.stack = plan, broker, server, stack
        from collector.bench.tally import Db

        self.db = Db(server.run.db_url)
        stack.callback(self.db.close)
        self.sensors = [f"sensor-{i:02d}" for i in range(1, plan.sensors + 1)]
        _register_sensors(server.run.db_url, server.town, self.sensors)
        _keep_stats_subscribed(server.run.stats)

    def live(self) -> dict:
        from collector.bench.memory import MemorySampler

        plan = self.plan
        progress("bench_soak_run", minutes=plan.duration_s / 60, vehicles=plan.vehicles,
                 sensors=plan.sensors, viewers=plan.viewers)
        devices = self._devices()
        crowd, ramp = self._crowd()
        probe = self._probe()
        pollers = self._pollers()
        memory = MemorySampler(self.broker, self.server)
        self.stack.callback(memory.stop)
        go = devices.go()
        events = self._faults(go)
        published = devices.collect(timeout=max(0.0, go + plan.duration_s - time.time()) + 300)
        progress("bench_soak_draining")
        counts = self._wait_stored(published["acked"])
        end = go + plan.duration_s
        polled = pollers.finish() if pollers else None
        seen = crowd.stop() if crowd else None
        probed = probe.stop()
        return self._result(go, end, published, counts, events, ramp, seen, probe, probed,
                            polled, memory.stop())

    # --- the parts ---------------------------------------------------------------

    def _devices(self) -> "DeviceProcess":
        from collector.bench.devices import DeviceJob

        plan = self.plan
        job = DeviceJob(self.broker.url, self.server.town, self.server.run.vehicles,
                        plan.vehicle_every_s, self.sensors, plan.sensor_every_s,
                        plan.duration_s)
        devices = DeviceProcess(job)
        self.stack.callback(devices.close)
        devices.start()
        return devices

    def _crowd(self):
        from collector.bench.listeners import Crowd
        from collector.bench.stack import HOST

        if not self.plan.viewers:
            return None, {"connected": 0, "failed": {}}
        crowd = Crowd(HOST, self.server.port, self.server.path("/live"), self.plan.viewers)
        self.stack.callback(crowd.close)
        return crowd, crowd.start()

    def _probe(self):
        from collector.bench.probe import LiveProbe

        probe = LiveProbe(self.server.port, self.server.path("/live"))
        self.stack.callback(probe.stop)
        probe.start()
        return probe

    def _pollers(self) -> "Pollers | None":
        if not self.plan.pollers:
            return None
        pollers = Pollers(self.server, self.plan)
        self.stack.callback(pollers.close)
        return pollers

    # --- faults --------------------------------------------------------------------

    def _faults(self, go: float) -> list[dict]:
        plan, events = self.plan, []
        if plan.faults:
            self._sleep_until(go + plan.duration_s / 3)
            events.append(self._fault(go, "broker_restart", self.broker.restart))
            self._sleep_until(go + 2 * plan.duration_s / 3)
            events.append(self._fault(go, "collector_kill", self._kill_collector))
        self._sleep_until(go + plan.duration_s)
        return events

    @staticmethod
    def _sleep_until(moment: float) -> None:
        time.sleep(max(0.0, moment - time.time()))

    def _fault(self, go: float, what: str, action) -> dict:
        began = time.time()
        progress(f"bench_soak_{what}", at=began - go)
        action()
        back = time.time()
        flowing = self._first_stored_after(began, back)
        return {"what": what, "at_s": round(began - go, 1), "began": began, "back": back,
                "down_s": round(back - began, 2),
                "data_again_s": None if flowing is None else round(flowing - began, 2)}

    def _kill_collector(self) -> None:
        """A power cut as far as the collector knows; systemd starts it again."""
        worker = self.server.run.workers[0]
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        time.sleep(RESTART_AFTER_S)
        worker.start()

    def _first_stored_after(self, began: float, back: float) -> float | None:
        """When the first message reached the database after the part came back."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            row = self.db.row(
                "SELECT extract(epoch FROM min(received_at)) FROM positions"
                " WHERE time > to_timestamp(%s) AND received_at > to_timestamp(%s)",
                (began - 600, back))
            if row and row[0] is not None:
                return float(row[0])
            time.sleep(0.25)
        return None

    # --- the tally -------------------------------------------------------------------

    def _wait_stored(self, acked: int) -> dict:
        from collector.bench.tally import stored_counts

        deadline = time.monotonic() + STORE_TIMEOUT_S
        counts = stored_counts(self.db, self.server.town)
        while counts["stored"] < acked and time.monotonic() < deadline:
            time.sleep(1.0)
            counts = stored_counts(self.db, self.server.town)
        time.sleep(1.0)  # a late copy would show up now (it cannot: unique key)
        return stored_counts(self.db, self.server.town)

    def _result(self, go, end, published, counts, events, ramp, seen, probe, probed, polled,
                memory) -> dict:
        from collector.bench.tally import collector_db_errors, delays, event_catch_up, status_5xx

        acked = published["acked"]
        windows = {"baseline": (go, go + self.plan.baseline_s),
                   "last_minute": (max(go, end - BASELINE_S), end), "run": (go, end)}
        for event in events:
            event["backlog_stored_s"] = event_catch_up(self.db, event)
        dropped = sum(seen["dropped"].values()) if seen else 0
        return {
            "published": published,
            "counts": {**counts, "sent_acked": acked, "loss": acked - counts["stored"]},
            "events": events,
            "delays_ms": delays(self.db, self.server.run.stats, probe, windows),
            "live": {"viewers": self.plan.viewers, "connected": ramp["connected"],
                     "failed": ramp["failed"], "dropped": dropped,
                     "dropped_reasons": seen["dropped"] if seen else {},
                     "delay_ms_all_viewers": seen["delay"].summary() if seen else {},
                     "probe": probed},
            "pollers": polled,
            "api_5xx": status_5xx(polled, ramp, probed),
            "memory_mb": memory,
            # someone else's test restarted the shared PostgreSQL meanwhile
            "database_reconnects": self.db.reconnects,
            "collector_db_errors": collector_db_errors(self.server.run.stats),
            "verdict": {"loss": acked - counts["stored"], "duplicates": counts["duplicates"],
                        "quarantined": counts["quarantined"],
                        "exactly_once": acked == counts["stored"] and counts["duplicates"] == 0
                        and counts["quarantined"] == 0 and published["unacked"] == 0},
        }


class DeviceProcess:
    """devices.py's process, seen from the bench."""

    def __init__(self, job) -> None:
        from collector.bench.devices import run_devices

        ctx = multiprocessing.get_context("spawn")
        self.ready, self.results = ctx.Queue(), ctx.Queue()
        self.go_event, self.stop_event = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(target=run_devices, daemon=True, args=(
            job, self.ready, self.go_event, self.stop_event, self.results))

    def start(self) -> None:
        from collector.bench.crowd import next_message

        self.proc.start()
        next_message(self.ready, [self.proc], timeout=120)

    def go(self) -> float:
        self.go_event.set()
        return time.time()

    def collect(self, timeout: float) -> dict:
        from collector.bench.crowd import next_message

        found = next_message(self.results, [self.proc], timeout)
        self.proc.join(30)
        kinds = [found["vehicles"], found["sensors"]]
        return {**found, **{k: sum(x[k] for x in kinds)
                            for k in ("published", "acked", "refused", "unacked")}}

    def close(self) -> None:
        self.stop_event.set()
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


class Pollers:
    """loadgen.py's open-loop client: pollers / poll_every requests per second."""

    def __init__(self, server, plan: SoakPlan) -> None:
        from collector.bench.crowd import next_message
        from collector.bench.loadgen import LoadJob, run_load
        from collector.bench.stack import HOST

        job = LoadJob(HOST, server.port, server.path("/vehicles"),
                      plan.pollers / plan.poll_every_s, plan.duration_s,
                      connections=min(plan.pollers, 8), warmup_s=0)
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.proc = ctx.Process(target=run_load, args=(job, self.results), daemon=True)
        self.proc.start()
        next_message(self.results, [self.proc], timeout=60)  # started

    def finish(self) -> dict:
        from collector.bench.crowd import next_message

        return next_message(self.results, [self.proc], timeout=120)

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)


def _register_sensors(db_url: str, town: str, names: list[str]) -> None:
    from collector.storage import open_storage

    storage = open_storage(db_url)
    try:
        for i, name in enumerate(names, 1):
            storage.add_device(town, name, "sensor", False, f"気温計{i}", settings={})
    finally:
        storage.close()


def _keep_stats_subscribed(stats) -> None:
    """The bench's stats listener has a clean session: after the broker restart
    it must subscribe again, or the collector's counters stop coming."""
    topics = [(topic, 0) for topic in stats.topics]
    stats.client.on_connect = lambda client, *_: client.subscribe(topics)
