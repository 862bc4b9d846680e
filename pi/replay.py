"""Play a recorded NMEA log into a pseudo-terminal, as if a GPS receiver were plugged in.

    machikit pi gps-replay drive.nmea --speed 20
    → 「GPS の再生中: /dev/pts/5 …」: point the tracker's [gps] port at that path.

For workshops without a receiver, and for the tests: the tracker reads the pty with pyserial
exactly as it reads /dev/ttyACM0. Dates are moved to recent days (`days_ago`), so a log from
years ago is accepted by the collector (it refuses times before 2020); only the date changes,
the time of day stays, and checksums are recomputed. `speed` 20 plays an hour in 3 minutes:
the tracker works on receiver time, so it behaves as in a real drive.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pty
import time
import tty
from collections.abc import Iterator
from pathlib import Path

# ddmmyy is field 9 of RMC (talker-independent: $GPRMC, $GNRMC ...).
RMC_DATE_FIELD = 9


def checksum(body: str) -> str:
    value = 0
    for char in body:
        value ^= ord(char)
    return f"{value:02X}"


def with_date(line: str, shift: dt.timedelta) -> str:
    """An RMC sentence with its date moved by `shift` (whole days); other lines unchanged."""
    if not line.startswith("$") or line[3:6] != "RMC" or "*" not in line:
        return line
    body = line[1:line.index("*")]
    fields = body.split(",")
    if len(fields) <= RMC_DATE_FIELD or len(fields[RMC_DATE_FIELD]) != 6:
        return line
    try:
        day = dt.datetime.strptime(fields[RMC_DATE_FIELD], "%d%m%y").date()
    except ValueError:
        return line
    fields[RMC_DATE_FIELD] = (day + shift).strftime("%d%m%y")
    body = ",".join(fields)
    return f"${body}*{checksum(body)}"


def first_date(lines: list[str]) -> dt.date | None:
    for line in lines:
        moved = with_date(line, dt.timedelta(0))
        if moved is not line:  # an RMC with a date
            fields = line.split(",")
            return dt.datetime.strptime(fields[RMC_DATE_FIELD], "%d%m%y").date()
    return None


def shifted(lines: list[str], days_ago: int) -> list[str]:
    """The log with its first date moved to `days_ago` days before today (UTC)."""
    start = first_date(lines)
    if start is None:
        return lines
    today = dt.datetime.now(dt.UTC).date()
    shift = (today - dt.timedelta(days=days_ago)) - start
    return [with_date(line, shift) for line in lines]


def epochs(lines: list[str]) -> Iterator[tuple[float | None, list[str]]]:
    """Groups of lines with the receiver's time of day (seconds) of their first sentence."""
    group: list[str] = []
    stamp: float | None = None
    for line in lines:
        seconds = time_of_day(line)
        if seconds is not None and seconds != stamp and group:
            yield stamp, group
            group = []
        if seconds is not None:
            stamp = seconds
        group.append(line)
    if group:
        yield stamp, group


def time_of_day(line: str) -> float | None:
    if not line.startswith("$") or line[3:6] not in ("RMC", "GGA"):
        return None
    field = line.split(",")[1] if line.count(",") else ""
    try:
        return int(field[0:2]) * 3600 + int(field[2:4]) * 60 + float(field[4:])
    except ValueError:
        return None


class Replay:
    """A pty whose other end plays the log. `path` is what the tracker opens."""

    def __init__(self, log_file: Path, speed: float = 20.0, days_ago: int = 2) -> None:
        text = log_file.read_bytes().decode("ascii", errors="replace")
        self.lines = shifted(text.splitlines(), days_ago)
        self.speed = speed
        self.master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as a serial port passes them
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open, so the pty survives the tracker closing and reopening
        self.written = 0

    def play(self, stop_after: int | None = None) -> None:
        """Write the log at `speed` times real time (receiver time between epochs)."""
        last: float | None = None
        for count, (stamp, group) in enumerate(epochs(self.lines)):
            if stop_after is not None and count >= stop_after:
                return
            if stamp is not None and last is not None and 0 < stamp - last < 60:
                time.sleep((stamp - last) / self.speed)
            last = stamp if stamp is not None else last
            data = ("\r\n".join(group) + "\r\n").encode("ascii", errors="replace")
            os.write(self.master, data)
            self.written += len(group)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
