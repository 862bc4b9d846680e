"""The GPS tracker job: a serial GPS receiver → good fixes → the outbox → the broker.

    serial line ─► FixAssembler ─► QualityFilter ─► Reporter ─► Outbox (SQLite, on disk)
                                                                   │
                                   sender thread: Forwarder ◄──────┘ ─► Link (MQTT, TLS)

Two threads, because waiting for the broker (an LTE link can stall for many seconds) must never
stop the serial port being read: a receiver sends about 1 KB a second and the kernel's buffer
is small. The reading thread only writes to the outbox; the sender thread only reads and
deletes, each with its own SQLite connection (WAL lets them work side by side).

Every published fix is in the outbox before anything is sent, so a power cut or a kill -9
loses nothing that was published; the outbox's seq makes a second delivery harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from machikit.texts import say
from pi.gps.nmea import Fix, FixAssembler, ReadStats
from pi.gps.quality import Limits, QualityFilter
from pi.gps.reporting import Policy, Reporter
from pi.link import Link
from pi.outbox import Outbox
from pi.sender import Sender

log = logging.getLogger("machikit.pi.tracker")

STATUS_EVERY_S = 60.0  # how often the status (queue depth, satellites, HDOP) is refreshed


@dataclass
class Counts:
    """What the job has done since it started (logged, and used by the tests)."""

    read: ReadStats = field(default_factory=ReadStats)
    published: int = 0


class FixPipeline:
    """Lines in, contract positions into the outbox out. No threads, no network: testable."""

    def __init__(self, outbox: Outbox, limits: Limits | None = None,
                 policy: Policy | None = None) -> None:
        self.counts = Counts()
        self.assembler = FixAssembler(self.counts.read)
        self.quality = QualityFilter(limits or Limits())
        self.reporter = Reporter(policy or Policy())
        self.outbox = outbox
        self.last_fix: Fix | None = None  # the newest fix, good or not: for the status

    def feed(self, line: bytes | str) -> None:
        fix = self.assembler.feed(line)
        if fix is not None:
            self._take(fix)

    def flush(self) -> None:
        while (fix := self.assembler.flush()) is not None:
            self._take(fix)

    def _take(self, fix: Fix) -> None:
        self.last_fix = fix
        if self.quality.check(fix) is None and self.reporter.due(fix):
            self.outbox.put("pos", position_fields(fix))
            self.counts.published += 1


def position_fields(fix: Fix) -> dict:
    """A contract v1 position without v/seq (the outbox adds them). Receiver time is the
    device's time: GPS time is better than a Pi's clock, which has no battery."""
    fields: dict = {"t": fix.t_ms, "lat": round(fix.lat or 0.0, 7), "lon": round(fix.lon or 0.0, 7)}
    optional = {"alt": fix.alt, "speed": fix.speed, "heading": fix.heading, "sats": fix.sats,
                "hdop": fix.hdop}
    for key, value in optional.items():
        if value is not None:
            fields[key] = round(value, 2) if isinstance(value, float) else value
    return fields


def receiver_health(fix: Fix | None) -> dict:
    """Status keys for the receiver now. `t` (GPS time) means the clock is set; before the
    first fix with a date the status says sync false."""
    if fix is None or fix.t_ms is None:
        return {"sats": None, "hdop": None, "t": None, "sync": False}
    return {"sats": fix.sats, "hdop": fix.hdop, "t": fix.t_ms, "sync": None}


class Tracker:
    """The job: read lines until stopped, keep the status current, hand fixes to the sender."""

    def __init__(self, lines: Callable[[], Iterable[bytes]], outbox_path: Path, link: Link,
                 limits: Limits | None = None, policy: Policy | None = None) -> None:
        self.lines = lines
        self.outbox = Outbox(outbox_path)
        self.pipeline = FixPipeline(self.outbox, limits, policy)
        self.link = link
        self.wake = threading.Event()
        self.sender = Sender(outbox_path, link, self.wake)
        self._status_at = 0.0

    def run(self, stop: threading.Event) -> Counts:
        self.link.start()
        self.sender.start()
        try:
            while not stop.is_set():
                for line in self.lines():
                    self._line(line)
                    if stop.is_set():
                        break
                # The port was quiet for a moment: a receiver sends each second's sentences
                # in one burst, so the epoch is complete. Without this the last fix would
                # wait for the next second's sentences, or for ever if the receiver stops.
                self._published_if(self.pipeline.flush)
                self._keep_status()
        finally:
            self.sender.stop()
            self.link.close(goodbye=True)
            self.outbox.close()
        return self.pipeline.counts

    def _line(self, line: bytes) -> None:
        self._published_if(lambda: self.pipeline.feed(line))
        self._keep_status()

    def _published_if(self, step: Callable[[], None]) -> None:
        before = self.pipeline.counts.published
        step()
        if self.pipeline.counts.published != before:
            self.wake.set()  # the sender sends it now, not at its next look

    def _keep_status(self) -> None:
        now = time.monotonic()
        if now - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = now
        health = self.link.health
        health["buffered"] = self.outbox.count()
        health["dropped"] = self.outbox.dropped
        health.update(receiver_health(self.pipeline.last_fix))
        self.sender.status_due.set()
        self.wake.set()
        log.info(say("tracker_status", buffered=health["buffered"],
                     published=self.pipeline.counts.published,
                     online=say("tracker_online" if self.link.connected else "tracker_offline")))
