"""The crowd's processes, seen from the bench: start, wait until every client
is in, stop, and add up what they saw."""

import multiprocessing
import time

from collector.bench.crowd import CrowdJob, next_message, run_crowd
from collector.bench.hist import Histogram

CLIENTS_PER_PROCESS = 2000  # one process holds this many with CPU to spare (see docs)


class Crowd:
    """Client processes. Spawned, not forked: the parent runs paho threads."""

    def __init__(self, host: str, port: int, path: str, clients: int,
                 processes: int | None = None) -> None:
        count = processes or max(1, -(-clients // CLIENTS_PER_PROCESS))
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.results, self.stop_event = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.jobs = [CrowdJob(host, port, path, clients // count + (i < clients % count), i)
                     for i in range(count)]
        self.procs = [ctx.Process(target=run_crowd, daemon=True,
                                  args=(job, self.ready, self.stop_event, self.results))
                      for job in self.jobs]
        self.ramp: list[dict] = []

    def start(self) -> dict:
        """Returns when every client has its snapshot or has failed."""
        started = time.monotonic()
        for proc in self.procs:
            proc.start()
        timeout = 60 + sum(j.clients for j in self.jobs) / 50
        self.ramp = [next_message(self.ready, self.procs, timeout) for _ in self.procs]
        failed: dict[str, int] = {}
        for r in self.ramp:
            for reason, n in r["failed"].items():
                failed[reason] = failed.get(reason, 0) + n
        return {"connected": sum(r["connected"] for r in self.ramp), "failed": failed,
                "ramp_s": round(time.monotonic() - started, 2),
                "ramp_cpu_s": round(sum(r["ramp_cpu_s"] for r in self.ramp), 2)}

    @property
    def pids(self) -> list[int]:
        return [r["pid"] for r in self.ramp]

    def stop(self, timeout: float = 60.0) -> dict:
        """Every client disconnects; their tallies, added up."""
        self.stop_event.set()
        found = [next_message(self.results, self.procs, timeout) for _ in self.procs]
        for proc in self.procs:
            proc.join(10)
        return merge(found)

    def close(self) -> None:
        self.stop_event.set()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def merge(results: list[dict]) -> dict:
    """One process's tallies or several: histograms and counters add up."""
    hists = {name: Histogram() for name in ("delay", "build", "fanout", "lag")}
    counts: dict[str, dict[str, int]] = {"counts": {}, "failed": {}, "dropped": {}}
    per_client: list[int] = []
    last_in: dict[int, float] = {}  # update (now_ms) -> when its last client got it
    for r in results:
        for sent, received in r["last_in"].items():
            last_in[sent] = max(received, last_in.get(sent, 0.0))
        for name, hist in hists.items():
            hist.merge(r[name])
        for name, total in counts.items():
            for key, n in r[name].items():
                total[key] = total.get(key, 0) + n
        per_client += r["per_client"]
    timeline = sorted((sent, round(received - sent)) for sent, received in last_in.items())
    everyone = Histogram()  # per update: from now_ms until the last client has it
    for _sent, took in timeline:
        everyone.add(took)
    return {**hists, "everyone": everyone, **counts, "per_client": sorted(per_client),
            "timeline": timeline, "cpu_s": sum(r["cpu_s"] for r in results)}
