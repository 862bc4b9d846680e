"""`machikit pi run gps`: the tracker job as the systemd service runs it.

Opens the receiver's serial port (a USB receiver is /dev/ttyACM0, the UART /dev/serial0), keeps
trying when it is unplugged, and stops cleanly on SIGTERM (systemctl stop) so the link says
`offline` itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import serial

from machikit.texts import say
from pi import runtime
from pi.config import JobConfig
from pi.gps.quality import Limits
from pi.gps.reporting import Policy
from pi.tracker import Tracker

log = logging.getLogger("machikit.pi.gps")

REOPEN_S = 2.0  # a USB receiver that was pulled out: try again this often


class SerialLines:
    """Lines from a serial port; survives the port going away and coming back."""

    def __init__(self, url: str, baud: int, stop: threading.Event) -> None:
        self.url = url
        self.baud = baud
        self.stop = stop
        self.port: serial.SerialBase | None = None

    def lines(self) -> Iterator[bytes]:
        """Lines until a read times out (so the caller can look at the clock and `stop`)."""
        port = self._open()
        if port is None:
            return
        try:
            while True:
                line = port.readline()
                if not line:
                    return
                yield line
        except (serial.SerialException, OSError) as error:
            log.warning(say("gps_port_lost", port=self.url, detail=error))
            self._close()

    def _open(self) -> serial.SerialBase | None:
        if self.port is not None:
            return self.port
        try:
            # serial_for_url: a device path, or loop:// / a pty in tests and workshops.
            self.port = serial.serial_for_url(self.url, self.baud, timeout=0.5)
            log.info(say("gps_port_open", port=self.url, baud=self.baud))
        except (serial.SerialException, OSError) as error:
            log.warning(say("gps_port_missing", port=self.url, detail=error))
            self.stop.wait(REOPEN_S)
        return self.port

    def _close(self) -> None:
        if self.port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self.port.close()
        self.port = None
        time.sleep(REOPEN_S / 4)


def run(cfg: JobConfig) -> int:
    stop = runtime.stop_on_signals("gps")  # systemctl stop: the link says offline itself
    gps = cfg.gps
    source = SerialLines(gps.port, gps.baud, stop)
    policy = Policy(moving_s=gps.moving_s, parked_s=gps.parked_s, turn_deg=gps.turn_deg)
    outbox = runtime.outbox_path(cfg)
    log.info(say("gps_job_start", device=cfg.device["name"], port=gps.port, outbox=outbox))
    counts = Tracker(source.lines, outbox, runtime.link_for(cfg), Limits(), policy).run(stop)
    log.info(say("gps_job_stop", published=counts.published, fixes=counts.read.fixes))
    return 0
