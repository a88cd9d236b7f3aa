"""A realistic reporting year for the SSDA903 round trip (issue 13, part 5): hundreds of
children, several episodes each in both categories, returns after minutes to days, starts and
ends between 00:00 and 00:59 during British Summer Time, children turning 18, and deliveries
late and out of order (a return before its absence, a second report after the return).

``expected_rows`` is the oracle: the Missing table the export must write, computed from the
generated truth with the return's rules written out here again (London dates, nothing from
the 18th birthday, a period crossing it ends on it), not with the export's code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.common import Category, Reporter
from schemas.events import (
    AbsenceReported,
    ChildProfile,
    EpisodeUpdate,
    InputEvent,
    ReturnReported,
)

LONDON = ZoneInfo("Europe/London")
YEAR_START, YEAR_END = date(2025, 4, 1), date(2026, 3, 31)
CARER = Reporter(role="carer")
MAX_DELAY = timedelta(hours=20)  # the latest any event arrives after it happened


@dataclass(frozen=True)
class Period:
    child: str
    start: datetime
    end: datetime | None
    category: Category


@dataclass
class Year:
    dobs: dict[str, date] = field(default_factory=dict)
    periods: list[Period] = field(default_factory=list)
    arrivals: list[tuple[datetime, InputEvent]] = field(default_factory=list)  # in writing order
    late_or_reordered: int = 0


def generate(seed: int = 903, children: int = 320) -> Year:
    rng = random.Random(seed)
    year = Year()
    first_day = datetime.combine(YEAR_START, time(0), tzinfo=LONDON).astimezone(UTC)
    last_start = datetime.combine(YEAR_END, time(0), tzinfo=LONDON).astimezone(UTC)
    for n in range(children):
        child = f"Y{n:04d}"
        dob = _dob(rng)
        year.dobs[child] = dob
        year.arrivals.append((first_day - timedelta(days=5), _profile(child, dob, first_day)))
        at = first_day + timedelta(minutes=rng.randint(0, 60 * 24 * 40))
        count = rng.choice([1, 2, 3, 3, 4, 4, 5, 6])
        for index in range(count):
            start = max(at, _maybe_small_hours(rng, at))
            length = _length(rng)
            end = _maybe_small_hours(rng, start + length)
            if end <= start:
                end = start + length
            still_away = index == count - 1 and rng.random() < 0.06
            _episode(rng, year, child, start, None if still_away else end)
            at = end + timedelta(minutes=rng.randint(30, 60 * 24 * 45))
            if still_away or at > last_start:
                break
    return year


def _episode(
    rng: random.Random, year: Year, child: str, start: datetime, end: datetime | None
) -> None:
    length = (end - start) if end else timedelta(hours=6)
    category = rng.choice([Category.MISSING, Category.MISSING, Category.AWAY])
    stated = []
    reported = start + length * rng.uniform(0, 0.3)
    first = AbsenceReported(
        occurred_at=reported, child_ref=child, last_seen_at=start, category=category, reporter=CARER
    )
    first_arrives = _arrive(rng, year, reported)
    year.arrivals.append((first_arrives, first))
    stated.append((reported, str(first.event_id), category))
    if rng.random() < 0.25:
        again = start + length * rng.uniform(0.35, 0.6)
        seen = start + (again - start) * rng.random()
        cat = rng.choice([Category.MISSING, Category.AWAY])
        second = AbsenceReported(
            occurred_at=again, child_ref=child, last_seen_at=seen, category=cat, reporter=CARER
        )
        year.arrivals.append((_arrive(rng, year, again), second))
        stated.append((again, str(second.event_id), cat))
    if rng.random() < 0.3:
        when = start + length * rng.uniform(0.65, 0.95)
        cat = rng.choice([Category.MISSING, Category.AWAY])
        change = EpisodeUpdate(
            occurred_at=when, child_ref=child, kind="category", category=cat, reporter=CARER
        )
        year.arrivals.append((max(_arrive(rng, year, when), first_arrives), change))
        stated.append((when, str(change.event_id), cat))
    if end is not None:
        back = ReturnReported(occurred_at=end, child_ref=child, returned_at=end, reporter=CARER)
        year.arrivals.append((_arrive(rng, year, end), back))
    year.periods.append(Period(child, start, end, max(stated)[2]))


def _arrive(rng: random.Random, year: Year, happened: datetime) -> datetime:
    if rng.random() < 0.3:
        year.late_or_reordered += 1
        return happened + timedelta(seconds=rng.randint(60, int(MAX_DELAY.total_seconds())))
    return happened + timedelta(seconds=rng.randint(0, 300))


def _dob(rng: random.Random) -> date:
    """Ages 8 to 17 at the start of the year; about one child in six turns 18 during it."""
    return YEAR_START - timedelta(days=rng.randint(8 * 365, 18 * 365 - 1))


def _length(rng: random.Random) -> timedelta:
    return timedelta(
        minutes=rng.choice([20, 45, 90, 180, 400, 900, 1500, 3000, 6000]) * rng.uniform(0.7, 1.3)
    )


def _maybe_small_hours(rng: random.Random, at: datetime) -> datetime:
    """One time in eight moved to 00:00-00:59 London on its day: during BST that is the
    previous UTC date, the case the export got wrong."""
    if rng.random() >= 0.125:
        return at
    local = at.astimezone(LONDON)
    moved = datetime.combine(local.date(), time(0, rng.randint(0, 59)), tzinfo=LONDON)
    return moved.astimezone(UTC)


def _profile(child: str, dob: date, at: datetime) -> ChildProfile:
    return ChildProfile(
        occurred_at=at - timedelta(days=30),
        child_ref=child,
        initials="YR",
        date_of_birth=dob,
        local_authority="LA-EXAMPLE",
    )


def in_arrival_order(year: Year) -> list[tuple[datetime, InputEvent]]:
    """Ties keep the order of writing (one child's events share a partition)."""
    order = sorted(range(len(year.arrivals)), key=lambda i: (year.arrivals[i][0], i))
    return [year.arrivals[i] for i in order]


def _london(value: datetime) -> date:
    return value.astimezone(LONDON).date()


def _eighteen(dob: date) -> date:
    try:
        return dob.replace(year=dob.year + 18)
    except ValueError:
        return date(dob.year + 18, 3, 1)


def expected_rows(year: Year) -> list[str]:
    rows = []
    for p in year.periods:
        dob, adult = year.dobs[p.child], _eighteen(year.dobs[p.child])
        start = _london(p.start)
        end = _london(p.end) if p.end else None
        if start >= adult:
            continue
        if (end is not None and end > adult) or (end is None and adult <= YEAR_END):
            end = adult
        if start > YEAR_END or (end is not None and end < YEAR_START):
            continue
        code = "M" if p.category is Category.MISSING else "A"
        rows.append(
            f"{p.child},{dob:%d/%m/%Y},{code},{start:%d/%m/%Y},{end:%d/%m/%Y}"
            if end
            else f"{p.child},{dob:%d/%m/%Y},{code},{start:%d/%m/%Y},"
        )
    return sorted(rows)
