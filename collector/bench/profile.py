"""Where the collector's time goes: py-spy samples, summed per thread and function.

py-spy (pip install py-spy) samples the interpreter from outside, so the
collector runs unchanged. Only samples of running (not idle) threads are kept,
so percentages are shares of the CPU the collector used, not of wall time.
"""

import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

RATE_HZ = 250
WAITING = {"Condition.wait (threading.py)", "Event.wait (threading.py)",
           "_worker (futures/thread.py)"}  # an idle thread-pool worker: blocked in C
WAY_IN = {"run_collect (collector/ingest.py)", "Collector.run (collector/ingest.py)",
          "Client.loop_forever (mqtt/client.py)", "Client._thread_main (mqtt/client.py)",
          "Client._loop (mqtt/client.py)"}
WAY_IN_MODULES = ("<frozen runpy>", "machikit/__main__.py", "machikit/cli.py", "threading.py")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """py-spy next to this Python (a venv) or on PATH."""
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


def wrapper(out: Path) -> list[str]:
    """Argv prefix: py-spy starts the collector and writes collapsed stacks when it exits."""
    exe = py_spy()
    if exe is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    return [exe, "record", "--rate", str(RATE_HZ), "--threads", "--format", "raw",
            "--output", str(out), "--"]


def summarize(path: Path, top: int = 12, labels: dict[str, str] | None = None) -> dict:
    """Shares of the samples: per thread, per function (self time), and per
    function within each thread (inclusive, without the thread's outer frames).
    labels: thread name prefix -> what it does (default: the collector's threads)."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inner: dict[str, Counter[str]] = defaultdict(Counter)
    samples = waiting = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames, count = stack.split(";"), int(count_text)
        names = [_name(f) for f in frames[1:]]  # frames[0]: 'thread (tid): name'
        if names and names[-1] in WAITING:  # py-spy counts timed waits as running
            waiting += count
            continue
        samples += count
        kind = _thread_kind(frames[0], labels or COLLECTOR_THREADS)
        threads[kind] += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            inner[kind][name] += count
    pct = lambda n: round(100 * n / samples, 1) if samples else 0.0  # noqa: E731
    return {"samples": samples, "waiting_samples": waiting,
            "threads": {k: pct(v) for k, v in threads.most_common()},
            "self": {k: pct(v) for k, v in own.most_common(top)},
            "by_thread": {kind: {k: pct(v) for k, v in _inside(inner[kind], total, top)}
                          for kind, total in threads.most_common()}}


def _inside(counts: Counter[str], thread_total: int, top: int) -> list[tuple[str, int]]:
    """The thread's own work, without the frames it is started through."""
    return [(k, v) for k, v in counts.most_common()
            if v < 0.98 * thread_total and not _way_in(k)][:top]


def _way_in(name: str) -> bool:
    return name in WAY_IN or any(f"({module})" in name for module in WAY_IN_MODULES)


COLLECTOR_THREADS = {"paho-mqtt-client": "paho network thread (receive, PUBACK)",
                     "MainThread": "main thread (check, write, commit, ack)"}


def _thread_kind(first: str, labels: dict[str, str]) -> str:
    """The label of the first prefix the thread's name starts with, or its name."""
    name = first.partition("): ")[2]
    return next((label for prefix, label in labels.items() if name.startswith(prefix)),
                name or "?")


def _name(frame: str) -> str:
    """'func (/…/paho/mqtt/client.py:123)' -> 'func (mqtt/client.py)', lines merged."""
    match = FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({'/'.join(Path(match['file']).parts[-2:])})"
