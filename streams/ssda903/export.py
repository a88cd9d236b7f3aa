"""The SSDA903 "Missing" table from the episode audit records. Pure: records in, rows out.

Columns as the return expects them: CHILD, DOB, MISSING (M/A, the category the episode ends
with), MIS_START (date last seen), MIS_END (date returned, blank while open); dates dd/mm/yyyy.
Return home interview offered/accepted (Ofsted Annex A) go to a second table keyed the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from schemas.common import authority_of, split_child_ref

SSDA903_COLUMNS = ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END")
RHI_COLUMNS = ("CHILD", "MIS_START", "RHI_OFFERED", "RHI_OFFERED_DATE", "RHI_ACCEPTED")


@dataclass
class Period:
    child: str
    code: str
    start: datetime
    category_code: str
    end: datetime | None = None
    rhi_offered_on: date | None = None
    rhi_accepted: bool | None = None


@dataclass
class Export:
    periods: list[Period]
    warnings: list[str] = field(default_factory=list)


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def fold_records(records: Iterable[dict[str, Any]]) -> dict[str, Period]:
    """Episode code -> period, from EpisodeRecord dicts in topic order (per child)."""
    periods: dict[str, Period] = {}
    for rec in records:
        code, action, detail = rec.get("episode_code"), rec.get("action"), rec.get("detail", {})
        if not isinstance(code, str) or not isinstance(detail, dict):
            continue
        if action == "opened":
            start = _dt(detail.get("last_seen_at"))
            if start is not None and code not in periods:
                periods[code] = Period(
                    rec["child_ref"], code, start, str(detail.get("category_code", "M"))
                )
            continue
        period = periods.get(code)
        if period is None:
            continue
        if action == "category_changed" and detail.get("category_code"):
            period.category_code = str(detail["category_code"])
        elif action == "closed":
            period.end = _dt(detail.get("returned_at"))
            period.start = _dt(detail.get("last_seen_at")) or period.start
            period.category_code = str(detail.get("category_code", period.category_code))
        elif action == "return_interview_recorded":
            offered = detail.get("offered_on")
            period.rhi_offered_on = date.fromisoformat(offered) if offered else None
            period.rhi_accepted = detail.get("accepted")
        elif action == "updated" and detail.get("last_seen_moved_earlier"):
            # The clock moved earlier; the final value arrives with "closed". While open, keep
            # the earliest start we can know of.
            moved = _dt(detail.get("last_seen_at"))
            if moved is not None and moved < period.start:
                period.start = moved
    return periods


def eighteenth_birthday(dob: date) -> date:
    try:
        return dob.replace(year=dob.year + 18)
    except ValueError:  # 29 February
        return date(dob.year + 18, 3, 1)


def select_periods(
    periods: Iterable[Period], dobs: dict[str, date], start: date, end: date
) -> Export:
    """Periods overlapping [start, end], checked against the return's validation rules."""
    out = Export(periods=[])
    by_child: dict[str, list[Period]] = {}
    for p in sorted(periods, key=lambda p: (p.child, p.start)):
        p_end = p.end.date() if p.end else None
        dob = dobs.get(p.child)
        if dob is not None and p_end is None and eighteenth_birthday(dob) <= end:
            p_end = eighteenth_birthday(dob)
            p.end = datetime.combine(p_end, datetime.min.time(), tzinfo=p.start.tzinfo)
        if p.start.date() > end or (p_end is not None and p_end < start):
            continue
        if dob is None:
            out.warnings.append(f"{p.child} {p.code}: no profile, DOB unknown")
        elif p.start.date() < dob:
            out.warnings.append(f"{p.child} {p.code}: MIS_START before DOB, left out")
            continue
        previous = by_child.setdefault(p.child, [])
        if previous and (previous[-1].end is None or p.start < previous[-1].end):
            out.warnings.append(f"{p.child} {p.code}: overlaps {previous[-1].code}, left out")
            continue
        previous.append(p)
        out.periods.append(p)
    return out


def _d(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return (value.date() if isinstance(value, datetime) else value).strftime("%d/%m/%Y")


def of_authority(periods: Iterable[Period], authority: str, default_authority: str) -> list[Period]:
    """One authority's periods: each council makes its own return, with its own references."""
    return [p for p in periods if authority_of(p.child, default_authority) == authority]


def _child(child_ref: str) -> str:
    """The reference as the authority's case system writes it (no '@authority')."""
    return split_child_ref(child_ref)[0]


def ssda903_csv(export: Export, dobs: dict[str, date]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SSDA903_COLUMNS)
    for p in export.periods:
        writer.writerow(
            [_child(p.child), _d(dobs.get(p.child)), p.category_code, _d(p.start), _d(p.end)]
        )
    return buf.getvalue()


def rhi_csv(export: Export) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RHI_COLUMNS)
    for p in export.periods:
        if p.end is None:
            continue
        offered = "Y" if p.rhi_offered_on else "N"
        accepted = "" if p.rhi_accepted is None else ("Y" if p.rhi_accepted else "N")
        writer.writerow([_child(p.child), _d(p.start), offered, _d(p.rhi_offered_on), accepted])
    return buf.getvalue()
