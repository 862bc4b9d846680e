"""Resident memory of the collector, the broker and the API over a long run,
sampled every few seconds: a leak shows as a line that keeps climbing.

The broker restarts at 1/3 and the collector at 2/3 of the soak, so each
sample names the process (pid) it was taken from.
"""

import contextlib
import os
import threading
import time

import psutil

EVERY_S = 10.0


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        rss = psutil.Process(pid).memory_info().rss
        return round(rss / 2**20, 1) if rss else None  # 0: killed, not yet reaped
    return None


class MemorySampler:
    def __init__(self, broker, server) -> None:
        self.broker, self.server = broker, server
        self.started = time.time()
        self.samples: list[dict] = []
        self.stopped = threading.Event()
        self.sample()
        self.thread = threading.Thread(target=self._run, name="memory", daemon=True)
        self.thread.start()

    def _pids(self) -> dict[str, int | None]:
        collector = self.server.run.workers[0]
        return {"collector": collector.pid if collector.alive() else None,
                "broker": self.broker.pid, "api": self.server.api_pid()}

    def sample(self) -> None:
        pids = self._pids()
        self.samples.append({"t_s": round(time.time() - self.started, 1),
                             "load1": round(os.getloadavg()[0], 2),
                             **{f"{part}_mb": rss_mb(pid) for part, pid in pids.items()},
                             **{f"{part}_pid": pid for part, pid in pids.items()}})

    def _run(self) -> None:
        while not self.stopped.wait(EVERY_S):
            self.sample()

    def stop(self) -> dict:
        if not self.stopped.is_set():
            self.stopped.set()
            self.thread.join(EVERY_S + 5)
            self.sample()
        return summary(self.samples)


def summary(samples: list[dict]) -> dict:
    """Start, middle and end of each part, its peak, and every sample (for a plot)."""
    found: dict = {}
    for part in ("collector", "broker", "api"):
        key = f"{part}_mb"
        values = [s[key] for s in samples if s[key] is not None]
        middle = values[len(values) // 2] if values else None  # not one taken mid-restart
        found[part] = {"start": samples[0][key], "middle": middle, "end": samples[-1][key],
                       "peak": max(values) if values else None,
                       "processes": len({s[f"{part}_pid"] for s in samples} - {None})}
    found["every_s"] = EVERY_S
    found["samples"] = samples
    return found
