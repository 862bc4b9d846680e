"""The roster as Excel writes it (UTF-8 with BOM, Shift_JIS), and one line per bad row."""

from pathlib import Path

import pytest

from machikit.workshop.roster import RosterError, RosterRow, read_roster

JAPANESE = ("名前,機器名,アプリ,公開\n"
            "山田 太郎,snow-a,snow,はい\n佐藤 花子,,printer,\n鈴木 一郎,,snow,0\n")
ENGLISH = ("participant,device,app,public\n"
           "Taro Yamada,snow-a,snow,yes\nHanako,,printer,\nIchiro,,snow,no\n")


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "roster.csv"
    path.write_bytes(text.replace("\n", "\r\n").encode(encoding))  # Excel ends lines so
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RosterError) as caught:
        read_roster(write(tmp_path, text))
    return caught.value.problems


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932", "utf-8"])
def test_japanese_roster_as_excel_saves_it(tmp_path: Path, encoding: str) -> None:
    rows = read_roster(write(tmp_path, JAPANESE, encoding))
    assert rows == [
        RosterRow(2, "山田 太郎", "snow-a", "snow", True),
        RosterRow(3, "佐藤 花子", "printer-01", "printer", False),
        RosterRow(4, "鈴木 一郎", "snow-01", "snow", False),
    ]


def test_english_headers_any_case_and_order(tmp_path: Path) -> None:
    text = "App,Participant\nsnow,A\nSNOW,B\n"
    rows = read_roster(write(tmp_path, text, "utf-8-sig"))
    assert [(r.participant, r.device, r.app) for r in rows] == [
        ("A", "snow-01", "snow"), ("B", "snow-02", "snow")]


def test_generated_names_skip_names_given_in_the_roster(tmp_path: Path) -> None:
    rows = read_roster(write(tmp_path, "名前,機器名,アプリ\nA,,snow\nB,snow-01,snow\n"))
    assert [r.device for r in rows] == ["snow-02", "snow-01"]


def test_english_roster(tmp_path: Path) -> None:
    rows = read_roster(write(tmp_path, ENGLISH))
    assert [(r.device, r.public) for r in rows] == [
        ("snow-a", True), ("printer-01", False), ("snow-01", False)]


def test_empty_lines_at_the_end_are_ignored(tmp_path: Path) -> None:
    assert len(read_roster(write(tmp_path, ENGLISH + ",,,\n\n"))) == 3


@pytest.mark.parametrize(("line", "expected"), [
    ("A,Bus 1,snow,", "機器名 'Bus 1' は使えません"),
    ("A,-,snow,", "Row 3: the device name '-' is not allowed"),
    ("A,snow-a,snow,", "Row 3: the device name snow-a is already used in row 2"),
    ("A,,camera,", "Row 3: unknown app 'camera'"),
    (",x-1,snow,", "Row 3: the participant's name is empty"),
    ("A,x-1,snow,maybe", "Row 3: cannot read public 'maybe'"),
])
def test_each_bad_row_is_one_bilingual_line(tmp_path: Path, line: str, expected: str) -> None:
    found = problems(tmp_path, "participant,device,app,public\nT,snow-a,snow,\n" + line + "\n")
    assert len(found) == 1
    assert expected in found[0]
    assert "3行目" in found[0] and " / " in found[0]  # Japanese first, then English


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "名前,機器名,アプリ\nA,BAD,snow\nB,,tv\nC,ok-1,snow\n")
    assert len(found) == 2
    assert found[0].startswith("2行目") and found[1].startswith("3行目")


@pytest.mark.parametrize(("text", "expected"), [
    ("名前,機器名\nA,x\n", "no column app"),
    ("アプリ\nsnow\n", "no column participant"),
    ("名前,アプリ\n", "no participant rows"),
])
def test_bad_roster_shape(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1 and expected in found[0]


def test_an_empty_file_names_both_required_columns(tmp_path: Path) -> None:
    found = problems(tmp_path, "")
    assert len(found) == 2 and "participant" in found[0] and "app" in found[1]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RosterError) as caught:
        read_roster(tmp_path / "none.csv")
    assert len(caught.value.problems) == 1 and "none.csv" in caught.value.problems[0]
