"""Real receivers' logs through pi.gps (nmea → quality → reporting): what each one gives.

The logs are in tests/fixtures/nmea (licences in its README): the Reno drive (Apache-2.0,
from dotMorten/NmeaParser) and eight GPSD captures (BSD-2-Clause, the GPSD project). Run with -s to
see the per-log table.
"""

import datetime as dt
import itertools
import re
import threading
from pathlib import Path

import pytest
import serial

from machikit.geo import LatLon, metres
from pi.gps.check import LogResult, check_file, format_table, main
from pi.gps.nmea import Fix, FixAssembler, ReadStats, fixes_from_lines
from pi.gps.quality import QualityFilter
from tests.conftest import FIXTURES

NMEA = FIXTURES / "nmea"
RENO = NMEA / "reno-car-drive-2005.nmea"
LOGS = [*sorted((NMEA / "gpsd").glob("*.log")), RENO]

# What each log gives, checked by hand against the file (the comments say where from).
EXPECTED = {
    # lines, sentences, bad checksum, garbage, fixes, accepted, rejected
    "et-332.log": (160, 107, 0, 34, 19, 19, {}),  # garbage: the terminal's "+ 6: 28 (....)"
    "iTrek.log": (117, 105, 0, 0, 37, 35, {"no_position": 2}),  # 2 RMC V without a fix
    "mtk-3301.log": (78, 59, 0, 0, 11, 0, {"invalid": 7, "few_satellites": 4}),  # 7 RMC V;
    # then a real fix from only 3 satellites (2D), below min_sats
    "neo-m8n.log": (298, 293, 0, 0, 23, 23, {}),
    "sl869.log": (176, 165, 0, 1, 15, 5, {"invalid": 7, "few_satellites": 3}),  # $GPTXT has no *hh
    # 37 empty RMC before the receiver knew the time; its clock stepped back .71 s → .408 s once
    "telit-he910.log": (1568, 1558, 0, 0, 224, 186, {"no_time": 37, "time_backwards": 1}),
    "triton400.log": (35, 28, 1, 0, 4, 4, {}),  # "$GPGGA,030130$GPGLL,…": the GLL still counts
    "ublox-8.log": (1019, 1008, 0, 2, 72, 72, {}),  # baud-rate noise first, cut-off RMC last
    # 4 "program startup" banners; 10 GGA with < 4 satellites, 39 with HDOP > 5
    RENO.name: (58100, 53628, 0, 4, 4469, 4420, {"few_satellites": 10, "high_hdop": 39}),
}
_CHECKSUM_END = re.compile(rb"\*[0-9A-F]{2}\s*$")


@pytest.fixture(scope="module")
def results() -> dict[str, LogResult]:
    return {path.name: check_file(path) for path in LOGS}


def test_every_log_is_here() -> None:
    assert sorted(path.name for path in LOGS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", LOGS, ids=lambda path: path.name)
def test_per_log_counts(path: Path, results: dict[str, LogResult]) -> None:
    got = results[path.name]
    lines, sentences, bad, garbage, fixes, accepted, rejected = EXPECTED[path.name]
    assert (got.lines, got.sentences, got.bad_checksum, got.garbage) == (
        lines, sentences, bad, garbage)
    assert (got.fixes, got.accepted, got.rejected) == (fixes, accepted, rejected)
    assert got.fixes == got.accepted + sum(got.rejected.values())
    assert (got.published > 0) == (got.accepted > 0) and got.published <= got.accepted


@pytest.mark.parametrize("path", LOGS, ids=lambda path: path.name)
def test_counted_independently(path: Path, results: dict[str, LogResult]) -> None:
    """Lines and fixes by a plain scan: each of these receivers sends one RMC per epoch."""
    raw = path.read_bytes().split(b"\n")
    complete_rmc = [line for line in raw if b"RMC," in line and _CHECKSUM_END.search(line)]
    assert results[path.name].lines == len(raw) - (raw[-1] == b"")
    assert results[path.name].fixes == len(complete_rmc)
    assert results[path.name].rollover_fixed <= results[path.name].fixes


def test_print_the_table(results: dict[str, LogResult], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(path) for path in LOGS]) == 0
    table = capsys.readouterr().out
    assert table == format_table([results[path.name] for path in LOGS]) + "\n"
    assert table.splitlines()[0].startswith("ファイル") and "bad checksum" in table.splitlines()[1]
    with capsys.disabled():
        print("\n" + table)


def test_a_missing_file_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(NMEA / "no-such.log")]) == 1
    assert "no-such.log" in capsys.readouterr().err


def fixes_of(path: Path) -> list[Fix]:
    with path.open("rb") as lines:
        return list(fixes_from_lines(lines))


def accepted_of(path: Path) -> list[Fix]:
    quality = QualityFilter()
    return [fix for fix in fixes_of(path) if quality.check(fix) is None]


def test_itrek_in_gifu_japan() -> None:
    # header: "Anpachi, Gifu, JP, 35N136E"; recorded 2005-07-27 → moved 1024 weeks on
    accepted = accepted_of(NMEA / "gpsd" / "iTrek.log")
    assert accepted and all(35.3 < (f.lat or 0) < 35.4 and 136.6 < (f.lon or 0) < 136.7
                            for f in accepted)
    assert {_utc(f).date() for f in accepted} == {dt.date(2025, 3, 12)}


def test_sl869_mixes_talkers() -> None:
    # $GPRMC/$GPGGA, one $GNGSA per constellation, $GLGSV and QZSS's $QZGSV
    fixes = fixes_of(NMEA / "gpsd" / "sl869.log")
    # GN's mode joins GP's position: no fix, then 2D from 3 satellites, then 3D
    assert [f.mode for f in fixes] == [1] * 7 + [2] * 3 + [3] * 5
    assert all(f.lat is not None and -33.7 < f.lat < -33.6 for f in fixes)  # Sydney


def test_mtk3301_waits_for_its_first_fix() -> None:
    fixes = fixes_of(NMEA / "gpsd" / "mtk-3301.log")
    before = [f for f in fixes if f.valid is False]
    assert len(before) == 7
    assert {_utc(f).year for f in before[:-1]} == {1980}, "receiver default, left alone"
    quality = QualityFilter()
    assert {quality.check(f) for f in before} == {"invalid"}


def test_reno_drive() -> None:
    accepted = accepted_of(RENO)
    first_rmc, last_rmc = _valid_rmc_ends(RENO)
    assert len(accepted) == 4420
    assert metres(first_rmc, (accepted[0].lat or 0, accepted[0].lon or 0)) < 3
    assert metres(last_rmc, (accepted[-1].lat or 0, accepted[-1].lon or 0)) < 3
    # 2005-09-25 local, so 25–26 Sept UTC; a receiver saying 2005 today has the rollover bug,
    # so the dates come out 1024 weeks later, in May 2025
    assert {_utc(f).date() for f in accepted} == {dt.date(2025, 5, 11), dt.date(2025, 5, 12)}
    for a, b in itertools.pairwise(accepted):
        seconds = ((b.t_ms or 0) - (a.t_ms or 0)) / 1000
        assert seconds > 0 and metres(_at(a), _at(b)) / seconds <= 70, (a, b)
    assert 100 < max(f.speed or 0 for f in accepted) * 3.6 < 115  # README: max 108 km/h


@pytest.mark.slow
def test_reno_drive_through_a_serial_port() -> None:
    """The receiver writes in 4 KB bursts, the reader takes whole lines with readline()."""
    data = RENO.read_bytes()
    port = serial.serial_for_url("loop://", timeout=0.1)

    def receiver() -> None:
        for start in range(0, len(data), 4096):
            port.write(data[start:start + 4096])

    writer = threading.Thread(target=receiver, daemon=True)
    writer.start()
    stats, fixes = ReadStats(), []
    assembler, partial = FixAssembler(stats), b""
    while writer.is_alive() or port.in_waiting:
        partial += port.readline()
        if partial.endswith(b"\n"):  # a read timeout can return half a line: keep it
            fixes.append(assembler.feed(partial))
            partial = b""
    fixes.append(assembler.flush())
    port.close()
    assert stats == ReadStats(lines=58100, sentences=53628, garbage=4, rollover_fixed=4469,
                              fixes=4469)
    assert [f for f in fixes if f is not None] == fixes_of(RENO)


def _valid_rmc_ends(path: Path) -> tuple[LatLon, LatLon]:
    """First and last position of an RMC with status A, read by hand."""
    points = []
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split(",")
        if line.startswith("$GPRMC") and fields[2] == "A":
            lat = int(fields[3][:2]) + float(fields[3][2:]) / 60
            lon = int(fields[5][:3]) + float(fields[5][3:]) / 60
            points.append((lat if fields[4] == "N" else -lat, lon if fields[6] == "E" else -lon))
    return points[0], points[-1]


def _utc(fix: Fix) -> dt.datetime:
    return dt.datetime.fromtimestamp((fix.t_ms or 0) / 1000, dt.UTC)


def _at(fix: Fix) -> LatLon:
    return (fix.lat or 0.0, fix.lon or 0.0)
