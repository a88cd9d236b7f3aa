from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from config import load_policy
from config.settings import POLICY_DIR
from schemas.common import Category, Reporter
from schemas.events import (
    AbsenceReported,
    ChildProfile,
    EpisodeUpdate,
    ReturnInterviewRecorded,
    ReturnReported,
)
from streams.episodes import machine
from streams.ssda903.export import (
    eighteenth_birthday,
    fold_records,
    rhi_csv,
    select_periods,
    ssda903_csv,
)

POLICY = load_policy(POLICY_DIR)
T0 = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
CARER = Reporter(role="carer")


def run(events: list[tuple[Any, datetime]]) -> list[dict[str, Any]]:
    """Drive the real engine and collect its audit records as they would be on the topic."""
    state = None
    records: list[dict[str, Any]] = []
    for event, now in events:
        state, effects = machine.apply(state, event, now, POLICY)
        records += [r.model_dump(mode="json") for r in effects.records]
    return records


def profile(child: str, dob: date) -> ChildProfile:
    return ChildProfile(
        occurred_at=T0 - timedelta(days=30),
        child_ref=child,
        initials="AB",
        date_of_birth=dob,
        local_authority="LA-EXAMPLE",
    )


def absence(child: str, seen: datetime, category: Category = Category.AWAY) -> AbsenceReported:
    return AbsenceReported(
        occurred_at=seen + timedelta(hours=1),
        child_ref=child,
        last_seen_at=seen,
        category=category,
        reporter=CARER,
    )


def test_closed_episode_row_uses_final_category_and_dates() -> None:
    opened = absence("C1", T0)
    first = run([(profile("C1", date(2011, 2, 3)), T0), (opened, T0 + timedelta(hours=1))])
    code = first[-1]["episode_code"]
    change = EpisodeUpdate(
        occurred_at=T0 + timedelta(hours=2),
        child_ref="C1",
        episode_code=code,
        kind="category",
        category=Category.MISSING,
        reporter=CARER,
    )
    back = ReturnReported(
        occurred_at=T0 + timedelta(days=1, hours=3),
        child_ref="C1",
        returned_at=T0 + timedelta(days=1, hours=2),
        reporter=CARER,
    )
    rhi = ReturnInterviewRecorded(
        occurred_at=T0 + timedelta(days=2),
        child_ref="C1",
        episode_code=code,
        offered_on=date(2026, 6, 3),
        accepted=True,
    )
    all_records = run(
        [
            (profile("C1", date(2011, 2, 3)), T0 - timedelta(days=30)),
            (opened, T0 + timedelta(hours=1)),
            (change, T0 + timedelta(hours=2)),
            (back, T0 + timedelta(days=1, hours=3)),
            (rhi, T0 + timedelta(days=2)),
        ]
    )
    dobs = {"C1": date(2011, 2, 3)}
    export = select_periods(
        fold_records(all_records).values(), dobs, date(2026, 4, 1), date(2027, 3, 31)
    )
    assert ssda903_csv(export, dobs) == (
        "CHILD,DOB,MISSING,MIS_START,MIS_END\nC1,03/02/2011,M,01/06/2026,02/06/2026\n"
    )
    assert rhi_csv(export) == (
        "CHILD,MIS_START,RHI_OFFERED,RHI_OFFERED_DATE,RHI_ACCEPTED\nC1,01/06/2026,Y,03/06/2026,Y\n"
    )
    assert not export.warnings


def test_open_episode_has_blank_end_and_period_filter_applies() -> None:
    records = run(
        [(profile("C2", date(2012, 1, 1)), T0), (absence("C2", T0), T0 + timedelta(hours=1))]
    )
    dobs = {"C2": date(2012, 1, 1)}
    inside = select_periods(
        fold_records(records).values(), dobs, date(2026, 4, 1), date(2027, 3, 31)
    )
    assert ssda903_csv(inside, dobs).splitlines()[1] == "C2,01/01/2012,A,01/06/2026,"
    before = select_periods(
        fold_records(records).values(), dobs, date(2025, 4, 1), date(2026, 3, 31)
    )
    assert len(before.periods) == 0


def test_open_episode_ends_at_eighteenth_birthday() -> None:
    dob = date(2008, 7, 1)
    records = run([(profile("C3", dob), T0), (absence("C3", T0), T0 + timedelta(hours=1))])
    export = select_periods(
        fold_records(records).values(), {"C3": dob}, date(2026, 4, 1), date(2027, 3, 31)
    )
    assert ssda903_csv(export, {"C3": dob}).splitlines()[1].endswith(",01/07/2026")
    assert eighteenth_birthday(date(2008, 2, 29)) == date(2026, 3, 1)


def test_start_before_dob_is_left_out_with_a_warning() -> None:
    records = run([(absence("C4", T0), T0 + timedelta(hours=1))])
    export = select_periods(
        fold_records(records).values(),
        {"C4": date(2027, 1, 1)},
        date(2026, 4, 1),
        date(2027, 3, 31),
    )
    assert export.periods == [] and "before DOB" in export.warnings[0]


def test_repeat_episodes_do_not_overlap() -> None:
    dob = date(2012, 1, 1)
    events: list[tuple[Any, datetime]] = [(profile("C5", dob), T0)]
    for day in range(3):
        seen = T0 + timedelta(days=day)
        events.append((absence("C5", seen), seen + timedelta(minutes=30)))
        back = ReturnReported(
            occurred_at=seen + timedelta(hours=3),
            child_ref="C5",
            returned_at=seen + timedelta(hours=2),
            reporter=CARER,
        )
        events.append((back, seen + timedelta(hours=3)))
    records = run(events)
    export = select_periods(
        fold_records(records).values(), {"C5": dob}, date(2026, 4, 1), date(2027, 3, 31)
    )
    assert len(export.periods) == 3 and not export.warnings
    ends = [p.end for p in export.periods]
    starts = [p.start for p in export.periods]
    assert all(e is not None and e <= s for e, s in zip(ends[:-1], starts[1:], strict=True))
