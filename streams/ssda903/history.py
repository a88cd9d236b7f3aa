"""A council's past SSDA903 Missing table, read for ``missing-alerts import ssda903``: the rows
the export writes (CHILD, DOB, MISSING, MIS_START, MIS_END; dd/mm/yyyy London dates) become
HistoricEpisode events, each bad row refused with its row number, column and reason. Pure:
text in, events and refusals out (docs/ssda903.md "Importing history").

Each event's id is derived from the child and the period's dates, so importing the same file
twice records each period once (the engine refuses an id it has recorded: ``already_recorded``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final
from uuid import NAMESPACE_URL, uuid5

from pydantic import ValidationError

from schemas.common import AUTHORITY_SEPARATOR, Category, scoped_child_ref
from schemas.events import HistoricEpisode
from streams.ssda903.export import SSDA903_COLUMNS, eighteenth_birthday, local_date

_NAMESPACE: Final = uuid5(NAMESPACE_URL, "urn:missing-alerts:ssda903-import")
MAX_ROWS: Final = 200_000
MAX_FIELD: Final = 64
_CATEGORIES: Final = {"M": Category.MISSING, "A": Category.AWAY}
_COLUMN_OF: Final = {
    "child_ref": "CHILD",
    "date_of_birth": "DOB",
    "started_on": "MIS_START",
    "ended_on": "MIS_END",
}


@dataclass(frozen=True)
class Refusal:
    row: int  # 1 is the header
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.column}: {self.reason}"


@dataclass
class Parsed:
    episodes: list[HistoricEpisode] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def parse_missing_table(
    raw: bytes, *, authority: str, default_authority: str, now: datetime
) -> Parsed:
    """Rows of one authority's table; ``now`` bounds the dates (nothing in the future)."""
    out = Parsed()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        out.refused.append(Refusal(0, "file", f"not UTF-8 (byte {exc.start})"))
        return out
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or [h.strip().upper() for h in header] != list(SSDA903_COLUMNS):
            out.refused.append(Refusal(1, "header", f"expected {','.join(SSDA903_COLUMNS)}"))
            return out
        seen: dict[str, list[tuple[date, date, int]]] = {}
        for number, row in enumerate(reader, start=2):
            if number > MAX_ROWS + 1:
                out.refused.append(Refusal(number, "file", f"more than {MAX_ROWS} rows"))
                break
            if not any(cell.strip() for cell in row):
                continue
            result = _row(row, number, authority, default_authority, now)
            if isinstance(result, Refusal):
                out.refused.append(result)
                continue
            clash = _overlap(seen.setdefault(result.child_ref, []), result, number)
            if clash is not None:
                out.refused.append(clash)
                continue
            out.episodes.append(result)
    except csv.Error as exc:
        out.refused.append(Refusal(reader.line_num, "file", f"not CSV: {exc}"))
    return out


def _row(
    row: list[str], number: int, authority: str, default_authority: str, now: datetime
) -> HistoricEpisode | Refusal:
    if len(row) != len(SSDA903_COLUMNS):
        return Refusal(number, "row", f"{len(row)} columns, expected {len(SSDA903_COLUMNS)}")
    cells = dict(zip(SSDA903_COLUMNS, (c.strip() for c in row), strict=True))
    child = cells["CHILD"]
    if not child or len(child) > MAX_FIELD or AUTHORITY_SEPARATOR in child:
        return Refusal(number, "CHILD", "empty, too long or naming another authority")
    days: dict[str, date | None] = {}
    for column in ("DOB", "MIS_START", "MIS_END"):
        value = _day(cells[column], earliest=1900 if column == "DOB" else 1990)
        if isinstance(value, str):
            return Refusal(number, column, value)
        days[column] = value
    dob, start, end = days["DOB"], days["MIS_START"], days["MIS_END"]
    category = _CATEGORIES.get(cells["MISSING"].upper())
    problem = _check(category, dob, start, end, local_date(now))
    if problem is not None:
        return Refusal(number, *problem)
    assert category is not None and start is not None and end is not None
    child_ref = scoped_child_ref(child, authority, default_authority)
    try:
        return HistoricEpisode(
            event_id=uuid5(_NAMESPACE, f"{child_ref}|{start}|{end}"),
            occurred_at=now,
            child_ref=child_ref,
            category=category,
            started_on=start,
            ended_on=end,
            date_of_birth=dob,
            source_row=number,
        )
    except ValidationError as exc:  # what the schema checks beyond the rules above
        error = exc.errors()[0]
        column = _COLUMN_OF.get(str(error["loc"][0]), "row") if error["loc"] else "row"
        return Refusal(number, column, error["msg"])


def _check(
    category: Category | None, dob: date | None, start: date | None, end: date | None, today: date
) -> tuple[str, str] | None:
    """(column, reason) of the first rule the row breaks."""
    if category is None:
        return "MISSING", "must be M or A"
    if start is None:
        return "MIS_START", "required"
    if end is None:
        return "MIS_END", "required: open periods are not imported (report the absence)"
    if end < start:
        return "MIS_END", "before MIS_START"
    if end > today:
        return "MIS_END", "in the future"
    if dob is not None and start < dob:
        return "MIS_START", "before DOB"
    if dob is not None and start >= eighteenth_birthday(dob):
        return "MIS_START", "on or after the 18th birthday"
    return None


def _day(value: str, *, earliest: int) -> date | str | None:
    """A dd/mm/yyyy date, None for blank, or why it is not one."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        return f"not a dd/mm/yyyy date: {value[:20]!r}"
    if day.year < earliest:
        return f"before {earliest}"
    return day


def _overlap(
    periods: list[tuple[date, date, int]], episode: HistoricEpisode, number: int
) -> Refusal | None:
    """Periods of one child may touch (one ends the day the next starts) but not overlap."""
    start, end = episode.started_on, episode.ended_on
    for other_start, other_end, other_row in periods:
        if (start, end) == (other_start, other_end):
            return Refusal(number, "row", f"repeats row {other_row}")
        if start < other_end and other_start < end:
            return Refusal(number, "MIS_START", f"overlaps row {other_row}")
    periods.append((start, end, number))
    return None
