"""Turn raw serial lines from a GPS receiver into fixes, one per receiver time (epoch).

A receiver sends several sentences for one moment (RMC, GGA, GSA, VTG, …); the ones that share a
UTC time are merged into one Fix. Real serial lines are messy — baud-rate garbage, terminal escape
codes, sentences cut short or run into the next — so nothing here raises: what cannot be read is
counted in ReadStats and skipped, and the tracker keeps running.
"""

import datetime as dt
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pynmea2

KNOTS_TO_MS = 0.514444
# Below this speed a receiver's course is noise (it wanders while the vehicle stands still).
HEADING_MIN_SPEED = 0.5
_USED = {"RMC", "GGA", "GSA", "VTG"}  # the rest (GSV, GLL, ZDA, TXT, RMB, …) adds nothing to a fix
_TIMED = {"RMC", "GGA"}  # the sentences that carry the receiver time and a position
_DAY_MS = 24 * 3600 * 1000
_UNIX_DAY0 = dt.date(1970, 1, 1)
# GPS week rollover. GPS broadcasts its week number in 10 bits, so it wraps every 1024 weeks
# (1999-08-22, 2019-04-07). A receiver with old firmware picks the wrong 1024-week era and reports
# dates 19.6 years in the past. The contract refuses synced times before 2020, so a date before
# 2020 can only be such a receiver: move it forward one era at a time. A receiver that has never
# had a fix reports its built-in default instead (1980 and similar, years before 2000): that is
# "not ready yet", not a rollover, so such dates are left alone when the fix is not valid.
_ROLLOVER = dt.timedelta(weeks=1024)
_REAL_TIME_FLOOR = dt.date(2020, 1, 1)
_NOT_READY_BEFORE = dt.date(2000, 1, 1)
# ANSI terminal escape codes (a capture made through a terminal program) and other control bytes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b.?|[\x00-\x1f\x7f]")
_TIME = re.compile(r"([01]\d|2[0-3])([0-5]\d)([0-5]\d|60)(?:\.(\d+))?")  # 60: leap second
_DATE = re.compile(r"(\d\d)(\d\d)(\d\d)")


@dataclass
class Fix:
    t_ms: int | None = None  # UTC Unix milliseconds; None until the receiver has told us the date
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None  # metres (GGA)
    speed: float | None = None  # m/s
    heading: float | None = None  # degrees true, 0..360; None when not moving
    sats: int | None = None  # satellites used (GGA)
    hdop: float | None = None
    quality: int | None = None  # GGA: 0 invalid, 1 GPS, 2 DGPS, …
    mode: int | None = None  # GSA: 1 no fix, 2 2D, 3 3D (best of the constellations)
    valid: bool | None = None  # RMC status A / V


@dataclass
class ReadStats:
    lines: int = 0
    sentences: int = 0
    bad_checksum: int = 0
    garbage: int = 0  # non-NMEA text, undecodable or truncated sentences
    rollover_fixed: int = 0  # fixes whose date was moved forward by the week rollover rule
    fixes: int = 0  # Fix objects produced


@dataclass
class _Epoch:  # the sentences of one receiver time, merged as they arrive
    fix: Fix = field(default_factory=Fix)
    tod_ms: int | None = None  # UTC time of day
    date: dt.date | None = None  # from RMC
    kinds: set[str] = field(default_factory=set)  # which of RMC/GGA were seen
    gga_hdop: bool = False  # GGA's HDOP wins over GSA's


class FixAssembler:
    """Feed one line at a time; returns a Fix when an epoch is complete (a new time arrived)."""

    def __init__(self, stats: ReadStats | None = None) -> None:
        self.stats = stats if stats is not None else ReadStats()
        self._epoch: _Epoch | None = None
        self._ready: deque[Fix] = deque()  # a line with two run-together sentences may end two
        self._date: dt.date | None = None  # last known date (receiver's, before rollover)
        self._tod_ms: int | None = None  # time of day of the last dated epoch

    def feed(self, line: bytes | str) -> Fix | None:
        self.stats.lines += 1
        text = line.decode("ascii", errors="replace") if isinstance(line, bytes) else line
        text = _ESCAPES.sub("", text).strip()
        if not text or text.startswith("#"):  # blank lines and the capture's comment header
            return None
        prefix, parts = _split_sentences(text)
        if prefix or not parts:  # a banner, or noise from a wrong baud rate
            self.stats.garbage += 1
        for i, part in enumerate(parts):
            msg = self._parse(part, cut_short=i < len(parts) - 1)
            if msg is not None:
                self._take(msg)
        return self._ready.popleft() if self._ready else None

    def flush(self) -> Fix | None:
        """The last pending fix (at the end of a log); call until None."""
        if self._epoch is not None:
            self._close()
        return self._ready.popleft() if self._ready else None

    def _parse(self, part: str, cut_short: bool) -> pynmea2.NMEASentence | None:
        if part.startswith("$P"):  # proprietary ($PGRM…, $PMTK…): not ours, often no checksum
            self.stats.sentences += 1
            return None
        try:
            msg = pynmea2.parse(part, check=True)
        except pynmea2.SentenceTypeError:  # checksum fine, a type pynmea2 does not know
            self.stats.sentences += 1
            return None
        except ValueError:  # pynmea2's ChecksumError and ParseError
            # With a checksum, or cut off by the next sentence, it was damaged on the way;
            # without one it is a line cut short (end of a capture) or a receiver's free text.
            if "*" in part or cut_short:
                self.stats.bad_checksum += 1
            else:
                self.stats.garbage += 1
            return None
        self.stats.sentences += 1
        return msg

    def _take(self, msg: pynmea2.NMEASentence) -> None:
        kind = getattr(msg, "sentence_type", "")
        if kind not in _USED:
            return
        # padded, so a short (malformed) sentence reads as empty fields instead of failing
        data = [str(value).strip() for value in msg.data] + [""] * 20
        tod = _time_of_day(data[0]) if kind in _TIMED else None
        if self._starts_new_epoch(kind, tod):
            self._close()
        epoch = self._epoch = self._epoch or _Epoch()
        if tod is not None:
            epoch.tod_ms = tod
        if kind in _TIMED:
            epoch.kinds.add(kind)
        _MERGE[kind](epoch, data)

    def _starts_new_epoch(self, kind: str, tod: int | None) -> bool:
        epoch = self._epoch
        if epoch is None:
            return False
        if tod is None:  # GSA/VTG belong to the current epoch; a time-less RMC/GGA repeats one
            return kind in epoch.kinds
        if epoch.tod_ms is None:  # so far only GSA/VTG (adopt them) or time-less RMC/GGA (close)
            return bool(epoch.kinds)
        return tod != epoch.tod_ms

    def _close(self) -> None:
        epoch, self._epoch = self._epoch, None
        if epoch is None or not epoch.kinds:  # GSA/VTG alone: no position sentence, no fix
            return
        fix = epoch.fix
        if fix.speed is not None and fix.speed < HEADING_MIN_SPEED:
            fix.heading = None
        fix.t_ms = self._stamp(epoch)
        self.stats.fixes += 1
        self._ready.append(fix)

    def _stamp(self, epoch: _Epoch) -> int | None:
        """UTC Unix ms of the epoch: its RMC date, or the last known date for GGA-only epochs."""
        if epoch.tod_ms is None:
            return None
        date = epoch.date
        if date is None and self._date is not None:
            date = self._date
            if self._tod_ms is not None and self._tod_ms - epoch.tod_ms > _DAY_MS // 2:
                date += dt.timedelta(days=1)  # the time of day went back: UTC midnight passed
        if date is None:
            return None
        self._date, self._tod_ms = date, epoch.tod_ms
        has_fix = epoch.fix.valid is True or (epoch.fix.quality or 0) > 0
        date = self._after_rollover(date, has_fix)
        return (date - _UNIX_DAY0).days * _DAY_MS + epoch.tod_ms

    def _after_rollover(self, date: dt.date, has_fix: bool) -> dt.date:
        if date >= _REAL_TIME_FLOOR or (date < _NOT_READY_BEFORE and not has_fix):
            return date
        while date < _REAL_TIME_FLOOR:
            date += _ROLLOVER
        self.stats.rollover_fixed += 1
        return date


def fixes_from_lines(lines: Iterable[bytes | str], stats: ReadStats | None = None) -> Iterator[Fix]:
    assembler = FixAssembler(stats)
    for line in lines:
        if (fix := assembler.feed(line)) is not None:
            yield fix
    while (fix := assembler.flush()) is not None:
        yield fix


def _split_sentences(text: str) -> tuple[str, list[str]]:
    """Text before the first '$', and each '$…' sentence (two may have run together)."""
    prefix, dollar, rest = text.partition("$")
    return (prefix.strip(), ["$" + part for part in rest.split("$")]) if dollar else (text, [])


def _merge_rmc(epoch: _Epoch, data: list[str]) -> None:
    fix = epoch.fix
    fix.valid = {"A": True, "V": False}.get(data[1], fix.valid)
    epoch.date = _date(data[8]) or epoch.date
    _set_position(fix, data, 2)
    knots = _float(data[6])
    if knots is not None:
        fix.speed = knots * KNOTS_TO_MS
    course = _float(data[7])
    if course is not None:
        fix.heading = course % 360


def _merge_gga(epoch: _Epoch, data: list[str]) -> None:
    fix = epoch.fix
    _set_position(fix, data, 1)
    fix.quality, fix.sats = _int(data[5]), _int(data[6])
    hdop = _float(data[7])
    if hdop is not None:
        fix.hdop, epoch.gga_hdop = hdop, True
    fix.alt = _float(data[8])


def _merge_gsa(epoch: _Epoch, data: list[str]) -> None:
    # Multi-constellation receivers send one GSA per system in an epoch; the best one counts.
    fix = epoch.fix
    mode = _int(data[1])
    if mode is not None and (fix.mode is None or mode > fix.mode):
        fix.mode = mode
    hdop = _float(data[15])
    if hdop is not None and not epoch.gga_hdop:
        fix.hdop = hdop if fix.hdop is None else min(fix.hdop, hdop)


def _merge_vtg(epoch: _Epoch, data: list[str]) -> None:
    # NMEA 2.3+: course,T,course,M,knots,N,km/h,K[,mode]; older receivers: course,course,knots,km/h
    fix, course = epoch.fix, _float(data[0])
    knots = _float(data[4 if data[1] == "T" or data[5] == "N" else 2])
    if fix.speed is None and knots is not None:
        fix.speed = knots * KNOTS_TO_MS
    if fix.heading is None and course is not None:
        fix.heading = course % 360


_MERGE = {"RMC": _merge_rmc, "GGA": _merge_gga, "GSA": _merge_gsa, "VTG": _merge_vtg}


def _set_position(fix: Fix, data: list[str], i: int) -> None:
    lat = _coordinate(data[i], data[i + 1], "N", "S", 90)
    lon = _coordinate(data[i + 2], data[i + 3], "E", "W", 180)
    if lat is not None and lon is not None:
        fix.lat, fix.lon = lat, lon


def _coordinate(text: str, hemisphere: str, plus: str, minus: str, limit: int) -> float | None:
    """'ddmm.mmmm' (latitude) or 'dddmm.mmmm' (longitude) to signed decimal degrees."""
    value = _float(text)
    if value is None or value < 0 or hemisphere not in (plus, minus):
        return None
    degrees = value // 100
    result = degrees + (value - degrees * 100) / 60
    if result > limit:
        return None
    return -result if hemisphere == minus else result


def _time_of_day(text: str) -> int | None:
    """'hhmmss.sss' to milliseconds since UTC midnight."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hours, minutes, seconds = (int(match.group(n)) for n in (1, 2, 3))
    millis = int(((match.group(4) or "") + "000")[:3])
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


def _date(text: str) -> dt.date | None:
    """RMC's 'ddmmyy'; two-digit years 80–99 are 1980–1999 (GPS time starts in 1980)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    day, month, year = (int(match.group(n)) for n in (1, 2, 3))
    try:
        return dt.date(year + (1900 if year >= 80 else 2000), month, day)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(text: str) -> int | None:
    return int(value) if (value := _float(text)) is not None else None
