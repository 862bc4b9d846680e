"""Running publisher processes together: all connected, then one "go"."""

import math
import multiprocessing
import queue
import time

from collector.bench.fleet import PublishJob, publish, split

PACED_PER_PROCESS = 10_000  # msg/s one paced publisher offers with CPU to spare
BACKLOG_PROCESSES = 2  # one per core on the 2-core reference machine


def process_count(rate: float, chosen: int | None) -> int:
    if chosen:
        return chosen
    return max(1, math.ceil(rate / PACED_PER_PROCESS)) if rate else BACKLOG_PROCESSES


class Publishers:
    """Publisher processes. Spawned, not forked: the parent runs paho threads."""

    def __init__(self, jobs: list[PublishJob]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.results, self.go_event = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.procs = [ctx.Process(target=publish, args=(job, self.ready, self.go_event,
                                                        self.results), daemon=True)
                      for job in jobs]

    def start(self, timeout: float = 60.0) -> None:
        """Returns when every process is connected and waiting for go()."""
        for proc in self.procs:
            proc.start()
        deadline = time.monotonic() + timeout
        waiting = len(self.procs)
        while waiting:
            try:
                self.ready.get(timeout=0.5)
                waiting -= 1
            except queue.Empty:
                self._check(deadline)

    def _check(self, deadline: float) -> None:
        """A publisher that died (its traceback is on stderr) fails the run now."""
        if any(p.exitcode not in (None, 0) for p in self.procs):
            raise RuntimeError("a publisher process failed (see its traceback above)")
        if time.monotonic() > deadline:
            raise TimeoutError("publisher processes did not connect in time")

    def go(self) -> float:
        self.go_event.set()
        return time.time()

    def collect(self, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        found: list[dict] = []
        while len(found) < len(self.procs):
            try:
                found.append(self.results.get(timeout=0.5))
            except queue.Empty:
                self._check(deadline)
        for proc in self.procs:
            proc.join(10)
        return found

    def stop(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)


def make_jobs(mqtt_url: str, town: str, vehicles: list[str], processes: int,
              rate: float = 0.0, seconds: float = 0.0, count: int = 0) -> list[PublishJob]:
    """Rate and count shared evenly; every vehicle belongs to one process."""
    shares = split(vehicles, processes)
    counts = [count // processes + (1 if i < count % processes else 0)
              for i in range(processes)]
    return [PublishJob(mqtt_url, town, share, f"{town}-pub{i}", rate / processes, seconds,
                       counts[i])
            for i, share in enumerate(shares)]


def summary(results: list[dict], seconds: float | None = None) -> dict:
    """Achieved rate: messages the broker acknowledged over the publishing time."""
    sent = sum(r["sent"] for r in results)
    acked = sum(r["acked"] for r in results)
    span = seconds or max(r["publish_s"] for r in results)
    return {"processes": len(results), "sent": sent, "acked": acked,
            "seconds": round(span, 3), "rate": round(sent / span, 1) if span else 0.0,
            "cpu_s": round(sum(r["cpu_s"] for r in results), 3),
            "ack_s": round(max(r["ack_s"] for r in results), 3)}
