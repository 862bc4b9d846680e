"""Open-loop GETs: request i is due at i / rate, whether or not earlier ones
have come back, over a few keep-alive connections (the `bench api` client).

Latency counts from the moment a request was due, so a slow server (or a busy
connection pool) shows up in it instead of silently lowering the rate. The
client's own share is measured too: how late it started each request (lag)
and its CPU.
"""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from collector.bench.crowd import run_fast
from collector.bench.hist import Histogram
from collector.bench.sse import READ_LIMIT, Body, HttpError, read_head, request

TIMEOUT_S = 10.0
MIN_SLEEP_S = 0.001
STEP_MS = 0.01  # time.perf_counter(): uvloop's loop.time() counts whole ms


@dataclass
class LoadJob:
    host: str
    port: int
    path: str
    rate: float
    seconds: float
    connections: int = 16
    conditional: bool = False  # send If-None-Match with the newest ETag seen
    warmup_s: float = 2.0  # same load first, not recorded


class Connection:
    """One keep-alive HTTP/1.1 connection, opened when first used."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], int]:
        """(status, headers, body bytes)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=READ_LIMIT)
        assert self.reader is not None
        self.writer.write(request(self.host, self.port, path, headers))
        status, head = await read_head(self.reader)
        size = 0
        if status == 304 or status == 204:
            pass
        elif "content-length" in head:
            size = len(await self.reader.readexactly(int(head["content-length"])))
        else:
            body = Body(self.reader, head)
            while part := await body.next():
                size += len(part)
            if not body.chunked:  # the body ended with the connection
                self.close()
        if head.get("connection", "").lower() == "close":
            self.close()
        return status, head, size

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Load:
    def __init__(self, job: LoadJob) -> None:
        self.job = job
        self.pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(job.connections):
            self.pool.put_nowait(Connection(job.host, job.port))
        self.etag: str | None = None
        self.reset()

    def reset(self) -> None:
        self.latency, self.service, self.lag, self.pool_wait = (
            Histogram(STEP_MS) for _ in range(4))
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.bytes = self.sent = 0

    async def one(self, due: float) -> None:
        started = time.perf_counter()
        self.lag.add((started - due) * 1000)  # the client's own lateness
        conn = await self.pool.get()  # all connections busy: waits (counted in latency)
        began = time.perf_counter()
        self.sent += 1
        self.pool_wait.add((began - started) * 1000)
        headers = {"If-None-Match": self.etag} if self.job.conditional and self.etag else {}
        try:
            status, head, size = await asyncio.wait_for(conn.get(self.job.path, headers),
                                                        TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, HttpError, TimeoutError,
                ValueError) as err:
            self.errors[type(err).__name__] += 1
            conn.close()
            return
        finally:
            self.pool.put_nowait(conn)
        done = time.perf_counter()
        self.statuses[str(status)] += 1
        self.bytes += size
        if status not in (200, 304):
            self.errors[f"HTTP {status}"] += 1
            return
        self.latency.add((done - due) * 1000)
        self.service.add((done - began) * 1000)
        self.etag = head.get("etag", self.etag)

    async def offer(self, seconds: float) -> float:
        """Paced for `seconds`; returns the wall time until the last answer."""
        rate, start = self.job.rate, time.perf_counter() + 0.01
        total, tasks = round(rate * seconds), list[asyncio.Task]()
        while len(tasks) < total:
            now = time.perf_counter()
            while len(tasks) < total and (due := start + len(tasks) / rate) <= now:
                tasks.append(asyncio.create_task(self.one(due)))
            # uvloop's timers count whole ms: sleep at least 1 ms rather than spin
            # (a spinning client would take a core from the server); the lag shows it
            await asyncio.sleep(max(MIN_SLEEP_S, start + len(tasks) / rate - now))
        await asyncio.gather(*tasks)
        return time.perf_counter() - start

    def result(self, wall_s: float, cpu_s: float) -> dict:
        sent = self.sent
        return {"rate": self.job.rate, "seconds": self.job.seconds,
                "conditional": self.job.conditional, "connections": self.job.connections,
                "requests": sent, "achieved_rate": round(sent / wall_s, 1),
                "statuses": dict(self.statuses), "errors": dict(self.errors),
                "bytes_per_response": round(self.bytes / max(1, sum(self.statuses.values()))),
                "latency_ms": self.latency.summary(2), "service_ms": self.service.summary(2),
                "client": {"lag_ms": self.lag.summary(2),
                           "connection_wait_ms": self.pool_wait.summary(2),
                           "cpu_percent": round(100 * cpu_s / wall_s, 1)}}


async def _run(job: LoadJob, results_q) -> dict:
    load = Load(job)
    if job.warmup_s:
        await load.offer(job.warmup_s)
        load.reset()
    results_q.put({"warmed_up": True})  # the bench starts its CPU meters now
    cpu0 = time.process_time()
    wall = await load.offer(job.seconds)
    result = load.result(wall, time.process_time() - cpu0)
    while not load.pool.empty():
        load.pool.get_nowait().close()
    return result


def run_load(job: LoadJob, results_q) -> None:
    """Process entry: warm up, say so, measure, report."""
    results_q.put(run_fast(_run(job, results_q)))
