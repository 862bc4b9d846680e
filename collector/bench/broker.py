"""A Mosquitto of the soak's own: the test bed's binary with persistence, on a
free port, so the soak can restart it without cutting off anyone else's tests.

Same settings that matter as the test bed's broker (persistence, a wide
in-flight window, a long queue); no password (127.0.0.1 only, removed after).
Stopped with SIGTERM, which saves the persistence file: the collector's
session and its queued messages survive the restart, as in production.
"""

import secrets
import shutil
import subprocess
import time

from collector.bench.bed import connected_client
from collector.bench.run import BenchError
from collector.bench.stack import HOST, free_port
from machikit.texts import say

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0  # saving a big queue to the persistence file takes a while


def config_text(port: int, inner_dir: str) -> str:
    return "\n".join([
        "# Written by `machikit bench soak`; removed when it ends.",
        f"listener {port} {HOST}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {inner_dir}/",
        "autosave_interval 60",
        "max_inflight_messages 1000",
        "max_queued_messages 2000000",
        f"log_dest file {inner_dir}/mosquitto.log",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "",
    ])


class SoakBroker:
    """Enter: the broker answers. restart(): SIGTERM, wait, start again. Exit: gone."""

    def __init__(self) -> None:
        from machikit.testbed.api import is_controllable
        from machikit.testbed.layout import current

        if not is_controllable():
            raise BenchError(say("bench_soak_needs_testbed"))
        self.layout = current()
        self.port = free_port()
        self.inner = f"/srv/machikit/bench-soak-{secrets.token_hex(4)}"
        self.dir = self.layout.host(self.inner)
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def __enter__(self) -> "SoakBroker":
        from machikit.testbed.system import chown

        self.dir.mkdir(parents=True)
        # Mosquitto drops to its own user: it must be able to write its files here.
        chown(self.layout.root, self.dir, "mosquitto", 0o755)
        (self.dir / "mosquitto.conf").write_text(config_text(self.port, self.inner),
                                                 encoding="utf-8", newline="\n")
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        from machikit.testbed.system import ROOT_ENV, chroot_cmd

        # `chroot` execs mosquitto: the child's pid is the broker's own.
        self.proc = subprocess.Popen(
            chroot_cmd(self.layout.root, ["mosquitto", "-c", f"{self.inner}/mosquitto.conf"]),
            env=ROOT_ENV, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_answering()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                connected_client(self.url, "bench-soak-probe", timeout=2.0).disconnect()
                return
            except (OSError, ConnectionError):
                time.sleep(0.1)
        raise BenchError("the soak's Mosquitto did not start:\n" + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        log = self.dir / "mosquitto.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
