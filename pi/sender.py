"""The thread that talks to the broker for a job: it drains the outbox through the link (live
first, then the backlog) and sends the status when asked.

Everything that waits for the broker happens here, never in the job's own loop: an LTE link
can stall for many seconds, and a GPS port must still be read, a buzzer still beep. The
thread opens its own Outbox on the same file (SQLite WAL lets the job write while it reads).
"""

from __future__ import annotations

import threading
from pathlib import Path

from pi.forward import Forwarder
from pi.link import Link
from pi.outbox import Outbox


class Sender(threading.Thread):
    """Drains the outbox through the link, live first, and sends the status when asked.
    Everything that waits for the broker happens here, never in the reading thread."""

    def __init__(self, outbox_path: Path, link: Link, wake: threading.Event) -> None:
        super().__init__(name="machikit-sender", daemon=True)
        self.outbox_path = outbox_path
        self.link = link
        self.wake = wake
        self.status_due = threading.Event()
        self.stopping = threading.Event()
        self.delivered = 0

    def run(self) -> None:
        outbox = Outbox(self.outbox_path)  # its own connection, in this thread
        try:
            forwarder = Forwarder(outbox, self.link)
            while not self.stopping.is_set():
                sent = forwarder.pump() if self.link.connected else 0
                self.delivered += sent
                if self.status_due.is_set() and self.link.connected:
                    self.status_due.clear()
                    self.link.send_status(timeout=5.0)
                if not sent:  # nothing (more) to send, or offline: wait for news
                    self.wake.wait(1.0)
                    self.wake.clear()
        finally:
            outbox.close()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.join(10)
