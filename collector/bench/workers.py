"""Collector workers as production runs them (`machikit collect` processes),
and a listener for the counters they publish every second."""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import collector
from collector.bench.bed import SESSION_EXPIRY_S, connected_client
from collector.stats import STATS_TOPIC

REPO = Path(collector.__file__).resolve().parent.parent


def collector_env(db_url: str, mqtt_url: str, town: str, client_id: str,
                  group: str | None, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """MACHIKIT_* settings of one worker; `extra` (--collector-env) wins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}
    env.update({
        "MACHIKIT_DATABASE_URL": db_url, "MACHIKIT_MQTT_URL": mqtt_url,
        "MACHIKIT_TOWN": town, "MACHIKIT_MQTT_CLIENT_ID": client_id,
        "MACHIKIT_STATS_INTERVAL_S": "1", "MACHIKIT_DATA_DIR": str(data_dir),
        "MACHIKIT_SESSION_EXPIRY_S": str(SESSION_EXPIRY_S),
        # no machikit.toml from wherever the bench was started
        "MACHIKIT_CONFIG": str(data_dir / "absent.toml"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    if group:
        env["MACHIKIT_MQTT_SHARED_GROUP"] = group
    env.update(extra)
    return env


class CollectorWorker:
    """`python -m machikit collect` (or another command: api, serve), optionally
    under a wrapper (py-spy record)."""

    def __init__(self, client_id: str, env: dict[str, str], log: Path,
                 wrapper: list[str] | None = None, command: str = "collect",
                 args: list[str] | None = None) -> None:
        self.client_id, self.env, self.log = client_id, env, log
        self.wrapper = wrapper or []
        self.command, self.args = command, args or []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:  # only handed to the child as its stdout
            self.proc = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", "machikit", self.command, *self.args],
                env=self.env, cwd=self.log.parent, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as systemd would; a wrapper passes it on and writes its output."""
        if not self.alive():
            return
        assert self.proc is not None
        if self.wrapper:  # py-spy's child is the collector: stop that, py-spy follows
            _signal_children(self.proc.pid, signal.SIGTERM)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return "(not started)"
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _signal_children(pid: int, sig: int) -> None:
    import psutil

    for child in psutil.Process(pid).children():
        child.send_signal(sig)


class StatsListener:
    """Every counters message of the given workers, with the time it came."""

    def __init__(self, mqtt_url: str, client_ids: list[str]) -> None:
        self.topics = {STATS_TOPIC.format(client_id=c): c for c in client_ids}
        self.snapshots: dict[str, list[dict]] = {c: [] for c in client_ids}
        self.lock = threading.Lock()
        self.client = connected_client(mqtt_url, "bench-stats-" + secrets.token_hex(3))
        self.client.on_message = self._on_message
        self.client.subscribe([(topic, 0) for topic in self.topics])
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        worker = self.topics.get(message.topic)
        if worker is None or not message.payload:
            return
        snap = json.loads(message.payload)
        with self.lock:
            self.snapshots[worker].append(snap)

    def latest(self, worker: str) -> dict:
        with self.lock:
            found = self.snapshots[worker]
            return found[-1] if found else {}

    def stored(self) -> int:
        return sum(self.latest(w).get("stored", 0) for w in self.snapshots)

    def wait_fresh(self, since_ms: int, timeout: float = 5.0) -> None:
        """Until every worker has published counters from after since_ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.latest(w).get("time_ms", 0) > since_ms for w in self.snapshots):
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
