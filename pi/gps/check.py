"""Run recorded NMEA logs through reading, filtering and reporting, and count what happened.

For `machikit pi gps-check FILE…`: before a receiver goes on a bus, record a few minutes of its
output and check that its fixes come through (and which filter drops the rest).
"""

import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from machikit.texts import TEXTS, say
from pi.gps.nmea import ReadStats, fixes_from_lines
from pi.gps.quality import Limits, QualityFilter
from pi.gps.reporting import Policy, Reporter

LatLon = tuple[float, float]
LIMITS, POLICY = Limits(), Policy()  # the defaults (frozen, so sharing them is safe)
_COLUMNS = ("lines", "sentences", "bad_checksum", "garbage", "fixes", "accepted", "published",
            "rollover_fixed")


@dataclass
class LogResult:
    name: str
    lines: int = 0
    sentences: int = 0
    bad_checksum: int = 0
    garbage: int = 0
    fixes: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason code -> count
    published: int = 0
    first: LatLon | None = None  # first and last accepted positions
    last: LatLon | None = None
    rollover_fixed: int = 0


def check_lines(
    name: str, lines: Iterable[bytes | str], limits: Limits = LIMITS, policy: Policy = POLICY
) -> LogResult:
    """Counts for one stream of lines, exactly as the tracker job would treat them."""
    stats = ReadStats()
    quality, reporter = QualityFilter(limits), Reporter(policy)
    result = LogResult(name)
    for fix in fixes_from_lines(lines, stats):
        if quality.check(fix) is not None or fix.lat is None or fix.lon is None:
            continue
        result.first = result.first or (fix.lat, fix.lon)
        result.last = (fix.lat, fix.lon)
        if reporter.due(fix):
            result.published += 1
    result.lines, result.sentences, result.fixes = stats.lines, stats.sentences, stats.fixes
    result.bad_checksum, result.garbage = stats.bad_checksum, stats.garbage
    result.rollover_fixed = stats.rollover_fixed
    result.accepted, result.rejected = quality.accepted, dict(quality.rejected)
    return result


def check_file(path: Path, limits: Limits = LIMITS, policy: Policy = POLICY) -> LogResult:
    with Path(path).open("rb") as lines:  # bytes, as they come from the serial port
        return check_lines(Path(path).name, lines, limits, policy)


def main(argv: list[str]) -> int:
    """Print one table row per NMEA file given; 1 if a file could not be read."""
    if not argv or argv[0] in ("-h", "--help"):
        print(say("gps_check_usage"))
        return 0 if argv else 2
    results, status = [], 0
    for name in argv:
        try:
            results.append(check_file(Path(name)))
        except OSError as error:
            print(say("gps_check_unreadable", path=name, detail=error), file=sys.stderr)
            status = 1
    if results:
        print(format_table(results))
    return status


def format_table(results: list[LogResult]) -> str:
    """Japanese header row, English header row, one row per log, then what the reasons mean."""
    keys = ("file", *_COLUMNS, "rejected")
    rows = [[TEXTS[f"gps_col_{key}"][language] for key in keys] for language in (0, 1)]
    for result in results:
        reasons = ", ".join(f"{code} {n}" for code, n in sorted(result.rejected.items()))
        rows.append([result.name, *(str(getattr(result, key)) for key in _COLUMNS), reasons])
    widths = [max(_width(row[i]) for row in rows) for i in range(len(keys))]
    lines = ["  ".join(_pad(cell, widths[i], i) for i, cell in enumerate(row)) for row in rows]
    codes = sorted({code for result in results for code in result.rejected})
    lines += [f"  {code}: {say('gps_reject_' + code)}" for code in codes]
    return "\n".join(line.rstrip() for line in lines)


def _width(text: str) -> int:
    """Columns on a terminal: Japanese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(cell: str, width: int, column: int) -> str:
    space = " " * (width - _width(cell))
    return cell + space if column in (0, len(_COLUMNS) + 1) else space + cell  # numbers right
