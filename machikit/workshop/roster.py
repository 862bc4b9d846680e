"""Reading the workshop roster (roster.csv) and checking every row before anything is done.

Instructors edit the roster in Excel: on Windows it saves UTF-8 with a BOM, or
Shift_JIS (cp932) for "CSV (コンマ区切り)". Both are accepted, with Japanese or
English headers. All problems are collected first, so a bad roster changes nothing.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from machikit.contract import is_device_name
from machikit.texts import say

APPS = ("snow", "printer")
# header -> field; Japanese first, as the instructor's Excel sheet has it
HEADERS = {
    "名前": "participant", "participant": "participant", "name": "participant",
    "機器名": "device", "device": "device",
    "アプリ": "app", "app": "app",
    "公開": "public", "public": "public",
}
REQUIRED = ("participant", "app")
YES = ("1", "yes", "y", "true", "はい", "公開", "○", "〇")
NO = ("", "0", "no", "n", "false", "いいえ", "非公開", "×")


@dataclass(frozen=True)
class RosterRow:
    row: int  # the row number Excel shows (the header is row 1)
    participant: str
    device: str
    app: str
    public: bool


class RosterError(ValueError):
    """One bilingual line per problem, all of them at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def decode(data: bytes) -> str:
    # utf-8-sig also reads plain UTF-8; cp932 bytes are almost never valid UTF-8.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp932")


def read_roster(path: Path) -> list[RosterRow]:
    try:
        text = decode(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError) as err:
        raise RosterError([say("workshop_roster_unreadable", path=path, detail=err)]) from err
    return parse_roster(text)


def parse_roster(text: str) -> list[RosterRow]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    columns = _columns(header or [])
    rows = [(number, cells) for number, cells in enumerate(reader, start=2)
            if any(cell.strip() for cell in cells)]  # Excel leaves empty lines at the end
    if not rows:
        raise RosterError([say("workshop_roster_empty")])
    problems: list[tuple[int, str]] = []  # (row, line): reported in row order
    parsed = [_row(number, cells, columns, problems) for number, cells in rows]
    named = _name_devices(parsed, problems)
    if problems:
        raise RosterError([line for _, line in sorted(problems, key=lambda p: p[0])])
    return named


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        field = HEADERS.get(title.strip().lower())
        if field:
            columns.setdefault(field, index)
    missing = [field for field in REQUIRED if field not in columns]
    if missing:
        raise RosterError([say("workshop_roster_missing_column", column=field)
                           for field in missing])
    return columns


def _row(number: int, cells: list[str], columns: dict[str, int],
         problems: list[tuple[int, str]]) -> RosterRow:
    def cell(field: str) -> str:
        index = columns.get(field)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    participant, app = cell("participant"), cell("app").lower()
    if not participant:
        problems.append((number, say("workshop_roster_no_participant", row=number)))
    if app not in APPS:
        problems.append((number, say("workshop_roster_bad_app", row=number, app=app,
                                     apps=", ".join(APPS))))
    public = cell("public").lower()
    if public not in YES + NO:
        problems.append((number, say("workshop_roster_bad_public", row=number, value=public)))
    return RosterRow(number, participant, cell("device"), app, public in YES)


def _name_devices(rows: list[RosterRow],
                  problems: list[tuple[int, str]]) -> list[RosterRow]:
    """Check the given device names, then give the empty ones `<app>-01`, `<app>-02`…"""
    first_row: dict[str, int] = {}
    for row in rows:
        if not row.device:
            continue
        if not is_device_name(row.device):
            problems.append((row.row, say("workshop_roster_bad_name", row=row.row,
                                          name=row.device)))
        elif row.device in first_row:
            problems.append((row.row, say("workshop_roster_duplicate", row=row.row,
                                          name=row.device, first=first_row[row.device])))
        else:
            first_row[row.device] = row.row
    taken = set(first_row)
    named = []
    for row in rows:
        if not row.device and row.app in APPS:
            row = RosterRow(row.row, row.participant, _free_name(row.app, taken), row.app,
                            row.public)
            taken.add(row.device)
        named.append(row)
    return named


def _free_name(app: str, taken: set[str]) -> str:
    number = 1
    while f"{app}-{number:02d}" in taken:
        number += 1
    return f"{app}-{number:02d}"
