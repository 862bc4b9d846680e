"""pi/gps/nmea.py: serial lines → one Fix per receiver time, never an exception."""

import datetime as dt
import functools
import operator

import pytest

from pi.gps.nmea import KNOTS_TO_MS, Fix, FixAssembler, ReadStats, fixes_from_lines


def nmea(body: str) -> str:
    """A sentence with its correct checksum."""
    return f"${body}*{functools.reduce(operator.xor, body.encode(), 0):02X}"


def rmc(t: str = "120000.00", date: str = "010724", status: str = "A", *, talker: str = "GP",
        where: str = "3519.9048,N,13640.2631,E", knots: str = "10.0", course: str = "92.5") -> str:
    return nmea(f"{talker}RMC,{t},{status},{where},{knots},{course},{date},,,A")


def gga(t: str = "120000.00", quality: int = 1, sats: str = "08", hdop: str = "0.9", *,
        talker: str = "GP", where: str = "3519.9048,N,13640.2631,E") -> str:
    return nmea(f"{talker}GGA,{t},{where},{quality},{sats},{hdop},12.5,M,38.0,M,,")


def gsa(mode: int, hdop: str = "1.2", talker: str = "GN") -> str:
    return nmea(f"{talker}GSA,A,{mode},01,02,03,04,,,,,,,,,2.0,{hdop},1.5")


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> int:
    when = dt.datetime(year, month, day, hour, minute, sec, tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def read(*lines: str | bytes) -> tuple[list[Fix], ReadStats]:
    stats = ReadStats()
    return list(fixes_from_lines(lines, stats)), stats


def test_one_epoch_from_several_talkers_is_one_fix() -> None:
    fixes, stats = read(
        rmc(talker="GN"), gga(talker="GP"), gsa(1, "9.9", "GL"), gsa(3, "1.2", "GN"),
        gsa(2, "3.0", "GA"), nmea("GNVTG,92.5,T,,M,10.0,N,18.5,K,A"),
        nmea("QZGSV,1,1,01,193,34,332,35"),
    )
    assert stats.fixes == 1 and stats.sentences == 7
    assert fixes == [Fix(
        t_ms=utc_ms(2024, 7, 1, 12), lat=pytest.approx(35 + 19.9048 / 60),
        lon=pytest.approx(136 + 40.2631 / 60), alt=12.5, speed=pytest.approx(10 * KNOTS_TO_MS),
        heading=92.5, sats=8, hdop=0.9, quality=1, mode=3, valid=True,
    )], "GGA's HDOP, the best GSA mode of the three constellations"


def test_a_fix_comes_out_when_a_new_time_arrives_and_flush_gives_the_last() -> None:
    assembler = FixAssembler()
    assert assembler.feed(gga("120000.00")) is None
    assert assembler.feed(rmc("120000.00")) is None
    assert assembler.feed(gsa(3)) is None
    first = assembler.feed(gga("120001.00"))
    assert first is not None and first.t_ms == utc_ms(2024, 7, 1, 12, 0, 0)
    last = assembler.flush()
    assert last is not None and last.t_ms == utc_ms(2024, 7, 1, 12, 0, 1), "GGA alone: last date"
    assert assembler.flush() is None


def test_gga_only_epochs_roll_over_utc_midnight() -> None:
    fixes, _ = read(rmc("235959.00", "311224"), gga("000000.00"), gga("000001.50"))
    assert [f.t_ms for f in fixes] == [
        utc_ms(2024, 12, 31, 23, 59, 59), utc_ms(2025, 1, 1), utc_ms(2025, 1, 1, 0, 0, 1) + 500]


def test_gga_before_any_date_has_no_time() -> None:
    fixes, _ = read(gga("120000.00"), gga("120001.00"))
    assert [f.t_ms for f in fixes] == [None, None]


@pytest.mark.parametrize(("date", "expected"), [
    ("250905", dt.date(2025, 5, 11)),  # the Reno drive: a 2005 date is a rollover bug today
    ("120319", dt.date(2038, 10, 26)),  # March 2019, just before the 2019 rollover
    ("311219", dt.date(2039, 8, 16)),  # the last day before the contract's 2020 floor
])
def test_dates_before_2020_move_forward_by_1024_weeks(date: str, expected: dt.date) -> None:
    fixes, stats = read(rmc(date=date))
    assert fixes[0].t_ms == utc_ms(expected.year, expected.month, expected.day, 12)
    assert stats.rollover_fixed == 1


def test_dates_from_2020_on_are_left_alone() -> None:
    fixes, stats = read(rmc(date="010120"))
    assert fixes[0].t_ms == utc_ms(2020, 1, 1, 12) and stats.rollover_fixed == 0


def test_a_receiver_without_a_fix_keeps_its_1980_default() -> None:
    # mtk-3301 before its first fix: not a rollover, the quality filter drops it as invalid
    fixes, stats = read(gga("235946.005", quality=0, sats="0", hdop=""),
                        rmc("235946.005", "050180", "V"))
    assert fixes[0].t_ms == utc_ms(1980, 1, 5, 23, 59, 46) + 5
    assert fixes[0].valid is False and fixes[0].quality == 0 and stats.rollover_fixed == 0


def test_a_1980_date_with_a_valid_fix_is_moved_past_2020() -> None:
    fixes, stats = read(rmc(date="050180"))
    moved = dt.date(1980, 1, 5) + dt.timedelta(weeks=3 * 1024)
    assert fixes[0].t_ms == utc_ms(moved.year, moved.month, moved.day, 12)
    assert stats.rollover_fixed == 1


def test_damaged_lines_are_counted_never_raised() -> None:
    good = rmc()
    fixes, stats = read(
        "# Name: a capture's comment header",
        "",
        "************ program startup 16:40:33 09-25-2005 ************",
        good[:-2] + "00",  # wrong checksum
        "$GPGGA,120001$" + gga("120001.00")[1:],  # a sentence run into the next
        "$PGRMZ,4523,f,3*2B",  # proprietary, with checksum
        "$POLYN,EPH,0,00000000",  # proprietary, without
        b"\xff\xfe\x81&\x9d\x00junk at the wrong baud rate",
        "$GNRMC,120002.00,A,3519.90,N,1364",  # the capture ended mid-sentence
    )
    assert stats == ReadStats(lines=9, sentences=3, bad_checksum=2, garbage=3, fixes=1)
    assert [(f.t_ms, f.sats) for f in fixes] == [(None, 8)], "the RMC with the date was damaged"


def test_terminal_escape_codes_are_removed_before_the_checksum() -> None:
    # et-332.log: the capture's terminal wrote "clear screen" into the middle of a checksum
    line = gga()[:-1] + "\x1b[H\x1b[J\x1b[H\x1b[J" + gga()[-1] + "\r\n"
    fixes, stats = read(line.encode())
    assert stats.sentences == 1 and stats.garbage == 0 and fixes[0].sats == 8


def test_south_and_west_are_negative_and_empty_fields_are_none() -> None:
    fixes, _ = read(rmc(where="3340.8472,S,07544.9356,W"),
                    rmc("120001.00", status="V", where=",,,"))
    assert fixes[0].lat == pytest.approx(-33.680787) and fixes[0].lon == pytest.approx(-75.748927)
    assert fixes[1].lat is None and fixes[1].lon is None and fixes[1].valid is False


def test_heading_is_none_when_standing_still() -> None:
    fixes, _ = read(rmc(knots="0.05", course="219.6"), rmc("120001.00", course=""))
    assert fixes[0].heading is None and fixes[0].speed == pytest.approx(0.05 * KNOTS_TO_MS)
    assert fixes[1].heading is None and fixes[1].speed == pytest.approx(10 * KNOTS_TO_MS)


@pytest.mark.parametrize("vtg", [
    "GPVTG,370.0,T,,M,20.0,N,37.0,K,A",  # NMEA 2.3: the letters name the fields
    "GPVTG,370.0,005.0,20.0,37.0",  # older receivers: four bare numbers
])
def test_vtg_gives_speed_and_heading_when_rmc_does_not(vtg: str) -> None:
    fixes, _ = read(gga(), nmea(vtg))
    assert fixes[0].speed == pytest.approx(20 * KNOTS_TO_MS) and fixes[0].heading == 10.0


def test_receivers_without_a_clock_yet_still_give_one_fix_per_epoch() -> None:
    # telit-he910.log before its fix: empty GGA and RMC, every second
    empty = [nmea("GPGGA,,,,,,0,,,,M,,M,,"), nmea("GPGSA,A,1,,,,,,,,,,,,,,,"),
             nmea("GPRMC,,V,,,,,,,,,,N")]
    fixes, stats = read(*empty, *empty, *empty)
    assert stats.fixes == 3 and all(f.t_ms is None and f.mode == 1 for f in fixes)


def test_bytes_with_bad_encoding_and_str_give_the_same_fix() -> None:
    as_str, _ = read(rmc())
    as_bytes, _ = read(rmc().encode() + b"\r\n")
    assert as_str == as_bytes
