"""The SSDA903 "Missing" table from the episode audit records. Pure: records in, rows out.

Columns as the return expects them: CHILD, DOB, MISSING (M/A, the category the episode ends
with), MIS_START (date last seen), MIS_END (date returned, blank while open); dates dd/mm/yyyy,
Europe/London calendar dates.
Return home interview offered/accepted (Ofsted Annex A) go to a second table keyed the same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.common import authority_of, split_child_ref
from schemas.record_details import (
    AmendedDetail,
    CancelledDetail,
    CategoryChangedDetail,
    ClosedDetail,
    OpenedDetail,
    ReturnInterviewDetail,
    UpdatedDetail,
)
from schemas.records import EpisodeRecord

SSDA903_COLUMNS = ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END")
RHI_COLUMNS = ("CHILD", "MIS_START", "RHI_OFFERED", "RHI_OFFERED_DATE", "RHI_ACCEPTED")
# The return is made to the DfE by English councils: its dates are calendar dates in England,
# whatever the UTC instant says (an instant between 00:00 and 00:59 BST is the previous UTC day).
RETURN_TZ = ZoneInfo("Europe/London")


@dataclass
class Period:
    child: str
    code: str
    start: datetime
    category_code: str
    end: datetime | None = None
    rhi_offered_on: date | None = None
    rhi_accepted: bool | None = None
    cancelled: bool = False  # a false report withdrawn: never a period (docs/ssda903.md)


@dataclass
class Export:
    periods: list[Period]
    warnings: list[str] = field(default_factory=list)


def fold_records(records: Iterable[dict[str, Any]]) -> dict[str, Period]:
    """Episode code -> period, from EpisodeRecord dicts in topic order (per child). A record
    that does not read as an EpisodeRecord (its action's detail model) is skipped: the
    audit topic may hold records of a later version, and one bad record must not stop a
    return."""
    periods: dict[str, Period] = {}
    for raw in records:
        try:
            rec = EpisodeRecord.model_validate(raw)
        except ValidationError:
            continue
        _fold(periods, rec)
    return periods


def _fold(periods: dict[str, Period], rec: EpisodeRecord) -> None:
    code, detail = rec.episode_code, rec.detail
    if isinstance(detail, OpenedDetail):
        if code not in periods:
            periods[code] = Period(rec.child_ref, code, detail.last_seen_at, detail.category_code)
        return
    period = periods.get(code)
    if period is None:
        return
    match detail:
        case CategoryChangedDetail():
            period.category_code = detail.category_code
        case ClosedDetail():
            period.start, period.end = detail.last_seen_at, detail.returned_at
            period.category_code = detail.category_code
        case AmendedDetail():
            # Late or out-of-order information re-derived the episode (docs/episode-engine.md):
            # its dates and category as they now stand.
            period.start, period.end = detail.last_seen_at, detail.returned_at
            period.category_code = detail.category_code
        case CancelledDetail():
            period.cancelled = True
        case ReturnInterviewDetail():
            period.rhi_offered_on, period.rhi_accepted = detail.offered_on, detail.accepted
        case UpdatedDetail() if detail.last_seen_moved_earlier and detail.last_seen_at:
            # The clock moved earlier; the final value arrives with "closed". While open, keep
            # the earliest start we can know of.
            period.start = min(period.start, detail.last_seen_at)


def eighteenth_birthday(dob: date) -> date:
    try:
        return dob.replace(year=dob.year + 18)
    except ValueError:  # 29 February
        return date(dob.year + 18, 3, 1)


def local_date(value: datetime) -> date:
    """The calendar date in England, which the return is judged on: a child last seen at
    00:30 BST on 1 July (23:30 UTC on 30 June) went missing on 1 July."""
    return value.astimezone(RETURN_TZ).date()


def select_periods(
    periods: Iterable[Period], dobs: dict[str, date], start: date, end: date
) -> Export:
    """Periods overlapping [start, end] (Europe/London dates), checked against the return's
    validation rules (docs/ssda903.md): nothing from the 18th birthday on, no period ending
    before it starts or before the child was born, no overlaps. Returns copies; the input
    periods are not changed."""
    out = Export(periods=[])
    by_child: dict[str, list[Period]] = {}
    for p in sorted(periods, key=lambda p: (p.child, p.start)):
        if p.cancelled:
            continue  # the child was never missing: no period, and no warning about one
        dob = dobs.get(p.child)
        p = _at_eighteen(p, dob, end) if dob is not None else replace(p)
        p_start, p_end = local_date(p.start), local_date(p.end) if p.end else None
        if p_start > end or (p_end is not None and p_end < start):
            continue
        reason = _left_out(p, p_start, p_end, dob)
        if reason == "" and dob is None:
            out.warnings.append(f"{p.child} {p.code}: no profile, DOB unknown")
        previous = by_child.setdefault(p.child, [])
        if reason == "" and previous and (previous[-1].end is None or p.start < previous[-1].end):
            reason = f"overlaps {previous[-1].code}"
        if reason:
            out.warnings.append(f"{p.child} {p.code}: {reason}, left out")
            continue
        previous.append(p)
        out.periods.append(p)
    return out


def _at_eighteen(p: Period, dob: date, report_end: date) -> Period:
    """A copy of ``p`` that ends on the 18th birthday if it crosses it: the child stops being
    looked after that day. An open period is closed so only once the birthday falls within
    the return (until then it is still open on the return's last day)."""
    adult = eighteenth_birthday(dob)
    if local_date(p.start) >= adult:
        return replace(p)
    crosses = local_date(p.end) > adult if p.end else adult <= report_end
    if not crosses:
        return replace(p)
    return replace(p, end=datetime.combine(adult, time.min, tzinfo=RETURN_TZ))


def _left_out(p: Period, p_start: date, p_end: date | None, dob: date | None) -> str:
    """Why a period may not appear on the return ("" if it may)."""
    if dob is not None and p_start >= eighteenth_birthday(dob):
        return "MIS_START on or after the 18th birthday"
    if dob is not None and p_start < dob:
        return "MIS_START before DOB"
    if p_end is not None and p_end < p_start:
        return "MIS_END before MIS_START"
    return ""


def _d(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return (local_date(value) if isinstance(value, datetime) else value).strftime("%d/%m/%Y")


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
