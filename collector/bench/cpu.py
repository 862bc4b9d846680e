"""CPU use per part (collector, Mosquitto, PostgreSQL), measured with psutil.

100 % is one core. A part is a process tree: PostgreSQL is the postmaster and
all its backends; a backend that exits during the window is still counted,
because its time moves into the postmaster's children_* times when reaped.
"""

import contextlib
import time
from urllib.parse import urlsplit

import psutil

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def server_process(url: str) -> psutil.Process | None:
    """The process listening on the URL's port, if the service runs on this host."""
    parts = urlsplit(url)
    if (parts.hostname or "") not in LOCAL_HOSTS:
        return None
    port = parts.port or {"postgresql": 5432, "postgres": 5432, "mqtt": 1883}.get(parts.scheme)
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    except psutil.Error:
        return None
    return None


class CpuMeter:
    """CPU seconds of each part between start() and stop(), as % of one core.
    A part may be several process trees (two collector workers)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[psutil.Process]] = {}
        self.before: dict[str, float] = {}
        self.started = 0.0

    def add(self, name: str, proc: psutil.Process | int | None) -> None:
        """Added after start(), all of the part's CPU time counts (its start-up too)."""
        procs = self.parts.setdefault(name, [])
        if proc is not None:
            procs.append(psutil.Process(proc) if isinstance(proc, int) else proc)

    def _seconds(self, name: str) -> float:
        return sum(tree_cpu_s(p) for p in self.parts[name])

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: self._seconds(name) for name in self.parts}

    def stop(self) -> dict[str, float | None]:
        elapsed = time.monotonic() - self.started
        return {name: (round(100 * (self._seconds(name) - self.before.get(name, 0.0))
                             / elapsed, 1) if procs else None)
                for name, procs in self.parts.items()}


class MachineMeter:
    """The whole machine's busy CPU between start() and stop(), as % of one core,
    and what is left after the measured parts: someone else's work on the same
    cores (a test suite, a browser) would skew every number of the run."""

    def start(self) -> None:
        self.started, self.before, self.retrans = time.monotonic(), _busy_s(), tcp_retransmits()

    def stop(self, parts: dict[str, float | None]) -> dict[str, float | None]:
        busy = 100 * (_busy_s() - self.before) / (time.monotonic() - self.started)
        retrans = tcp_retransmits()
        return {"machine": round(busy, 1),
                "other": round(busy - sum(v for v in parts.values() if v), 1),
                "tcp_retransmits": None if retrans is None or self.retrans is None
                else retrans - self.retrans}


def tcp_retransmits() -> int | None:
    """Segments the kernel sent again, machine-wide (Linux): on loopback, a
    retransmission means a dropped packet and ≥ 200 ms (the minimum RTO) lost."""
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            head, values = [line.split() for line in f if line.startswith("Tcp:")][:2]
    except (OSError, ValueError):
        return None
    return int(dict(zip(head, values, strict=True)).get("RetransSegs", 0))


BUSY = ("user", "nice", "system", "irq", "softirq", "steal")  # guest is inside user


def _busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(getattr(t, name, 0.0) for name in BUSY))

