"""A crowd of live-stream listeners: thousands of SSE clients per process.

Each client connects, waits for its `snapshot`, then notes for every vehicle
feature of every `update` how late it came: receive time − the position's `t`
(device time = publish time, same clock). Split as the server stamps it:
build = the update's `now_ms` − `t`, fan-out = receive − `now_ms`.
The process also watches its own event loop: if that runs late, the client,
not the server, would be the one adding delay.
"""

import asyncio
import json
import os
import queue
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from collector.bench.hist import Histogram
from collector.bench.sse import Body, EventStream, HttpError, open_stream

CONNECT_TIMEOUT_S = 30.0  # connect + snapshot, per client
LAG_TICK_S = 0.1


@dataclass
class CrowdJob:
    host: str
    port: int
    path: str
    clients: int
    index: int = 0
    concurrency: int = 100  # connections being opened at once


@dataclass
class Tally:
    """Everything one process's clients saw; adds up across processes."""

    delay: Histogram = field(default_factory=Histogram)
    build: Histogram = field(default_factory=Histogram)
    fanout: Histogram = field(default_factory=Histogram)
    lag: Histogram = field(default_factory=Histogram)
    counts: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    per_client: list[int] = field(default_factory=list)  # new features each client got
    last_in: dict[int, float] = field(default_factory=dict)  # update now_ms -> last receive

    def update(self, data: str, received_ms: float, seen: dict[str, int]) -> int:
        """Record an update's vehicles; returns how many were new positions."""
        msg = json.loads(data)
        sent = msg.get("now_ms")
        if sent and received_ms > self.last_in.get(sent, 0.0):
            self.last_in[sent] = received_ms
        new = 0
        for feature in msg.get("vehicles") or ():
            t = feature["properties"]["t"]
            key = feature.get("id") or feature["properties"]["id"]
            if seen.get(key, -1) >= t:  # the same fix again, or an older one
                self.counts["repeated"] += 1
                continue
            seen[key] = t
            new += 1
            self.delay.add(received_ms - t)
            if sent:
                self.build.add(sent - t)
                self.fanout.add(received_ms - sent)
        self.counts["updates"] += 1
        self.counts["removed"] += len(msg.get("removed") or ())
        return new

    def snapshot(self, data: str, seen: dict[str, int]) -> None:
        for feature in json.loads(data).get("vehicles", {}).get("features", ()):
            seen[feature.get("id") or feature["properties"]["id"]] = feature["properties"]["t"]
        self.counts["snapshots"] += 1

    def result(self) -> dict:
        return {"delay": dict(self.delay.counts), "build": dict(self.build.counts),
                "fanout": dict(self.fanout.counts), "lag": dict(self.lag.counts),
                "counts": dict(self.counts), "failed": dict(self.failed),
                "dropped": dict(self.dropped), "per_client": self.per_client,
                "last_in": self.last_in}


class Listener:
    """One client: connected once, never reconnects (a drop is counted)."""

    def __init__(self, job: CrowdJob, tally: Tally, ready) -> None:
        self.job, self.tally, self.ready = job, tally, ready
        self.features = 0

    async def run(self, gate: asyncio.Semaphore) -> None:
        await gate.acquire()
        try:
            stream = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
        except (HttpError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError) as err:
            self.tally.failed[_reason(err)] += 1
            self.ready()
            return
        finally:
            gate.release()
        self.tally.counts["connected"] += 1
        self.ready()
        await self._listen(*stream)

    async def _connect(self) -> tuple:
        reader, writer, headers = await open_stream(self.job.host, self.job.port, self.job.path)
        body, events, seen = Body(reader, headers), EventStream(), dict[str, int]()
        try:
            while True:  # until the snapshot: it comes first
                data = await body.next()
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                found = events.feed(data)
                for event, payload in found:
                    if event == "snapshot":
                        self.tally.snapshot(payload, seen)
                if any(event == "snapshot" for event, _ in found):
                    return writer, body, events, seen
        except BaseException:
            writer.close()
            raise

    async def _listen(self, writer, body: Body, events: EventStream, seen: dict) -> None:
        tally = self.tally
        try:
            while data := await body.next():
                received_ms = time.time() * 1000
                tally.counts["bytes"] += len(data)
                for event, payload in events.feed(data):
                    if event == "update":
                        self.features += tally.update(payload, received_ms, seen)
            tally.dropped["closed by the server"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            tally.dropped[_reason(err)] += 1
        finally:
            tally.counts["pings"] += events.comments
            tally.per_client.append(self.features)
            writer.close()


def _reason(err: BaseException) -> str:
    if isinstance(err, HttpError):
        return f"HTTP {err.status}"
    if isinstance(err, OSError) and err.errno:
        return f"{type(err).__name__} ({os.strerror(err.errno)})"
    return type(err).__name__


async def watch_lag(lag: Histogram) -> None:
    """How late the loop wakes up for a timer: time this process keeps clients waiting."""
    while True:
        due = time.perf_counter() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lag.add(max(0.0, time.perf_counter() - due) * 1000)


async def gather_crowd(job: CrowdJob, ready_q, stop) -> Tally:
    """Connect every client (reporting when all are in or failed), listen until stop."""
    tally, gate = Tally(), asyncio.Semaphore(job.concurrency)
    all_in, pending = asyncio.Event(), [job.clients]

    def ready() -> None:
        pending[0] -= 1
        if pending[0] == 0:
            all_in.set()

    started, cpu0 = time.monotonic(), time.process_time()
    tasks = [asyncio.create_task(Listener(job, tally, ready).run(gate))
             for _ in range(job.clients)]
    if job.clients:
        await all_in.wait()
    ready_q.put({"index": job.index, "pid": os.getpid(), "ramp_s": time.monotonic() - started,
                 "ramp_cpu_s": time.process_time() - cpu0,
                 "connected": tally.counts["connected"], "failed": dict(tally.failed)})
    watcher = asyncio.create_task(watch_lag(tally.lag))
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for task in [watcher, *tasks]:
        task.cancel()
    await asyncio.gather(watcher, *tasks, return_exceptions=True)
    return tally


def raise_nofile() -> tuple[int, int]:
    """Soft limit of open files up to the hard one: one socket per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run_crowd(job: CrowdJob, ready_q, stop, results_q) -> None:
    """Process entry."""
    raise_nofile()
    cpu0 = time.process_time()
    tally = run_fast(gather_crowd(job, ready_q, stop))
    results_q.put({"index": job.index, "cpu_s": time.process_time() - cpu0, **tally.result()})


def run_fast(coro):
    """asyncio.run on uvloop when it is there (as the server runs)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def next_message(q, procs, timeout: float) -> dict:
    """The next message from child processes; fails fast if one of them died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=0.5)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a client process failed (see its traceback above)") from None
            if time.monotonic() > deadline:
                raise TimeoutError("client processes did not answer in time") from None
