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


# -- Europe/London calendar dates and the 18th birthday (issue 13) --------------------------

YEAR = (date(2026, 4, 1), date(2027, 3, 31))


def period(child: str, start: datetime, end: datetime | None = None, code: str = "E1") -> Any:
    from streams.ssda903.export import Period

    return Period(child=child, code=code, start=start, category_code="M", end=end)


def rows(periods: list[Any], dobs: dict[str, date]) -> list[str]:
    return ssda903_csv(select_periods(periods, dobs, *YEAR), dobs).splitlines()[1:]


def test_dates_are_london_calendar_dates_in_summer_time() -> None:
    # 23:30 UTC on 30 June is 00:30 BST on 1 July; 23:10 UTC on 1 July is 00:10 on 2 July.
    p = period(
        "C6",
        datetime(2026, 6, 30, 23, 30, tzinfo=UTC),
        datetime(2026, 7, 1, 23, 10, tzinfo=UTC),
    )
    assert rows([p], {"C6": date(2012, 5, 5)}) == ["C6,05/05/2012,M,01/07/2026,02/07/2026"]


def test_in_winter_london_and_utc_dates_agree() -> None:
    p = period("C7", datetime(2026, 12, 1, 23, 30, tzinfo=UTC), None)
    assert rows([p], {"C7": date(2012, 5, 5)}) == ["C7,05/05/2012,M,01/12/2026,"]


def test_the_reporting_year_is_cut_on_london_dates() -> None:
    # 23:30 UTC on 31 March 2027 is already 1 April in London (BST from 28 March): next year.
    p = period("C8", datetime(2027, 3, 31, 23, 30, tzinfo=UTC), None)
    assert rows([p], {"C8": date(2012, 5, 5)}) == []
    # and 23:30 UTC on 31 March 2026 started this year, on 1 April.
    q = period("C8", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), None, code="E2")
    assert rows([q], {"C8": date(2012, 5, 5)}) == ["C8,05/05/2012,M,01/04/2026,"]


def test_a_period_starting_on_or_after_the_18th_birthday_is_left_out_with_a_warning() -> None:
    dob = date(2008, 7, 1)
    on = period("C9", datetime(2026, 6, 30, 23, 30, tzinfo=UTC))  # 00:30 BST on the birthday
    export = select_periods([on], {"C9": dob}, *YEAR)
    assert export.periods == []
    assert "on or after the 18th birthday" in export.warnings[0]


def test_an_open_period_crossing_the_18th_birthday_ends_on_it_never_before_it_starts() -> None:
    dob = date(2008, 7, 1)
    before = period("C10", datetime(2026, 6, 29, 20, 0, tzinfo=UTC))
    assert rows([before], {"C10": dob}) == ["C10,01/07/2008,M,29/06/2026,01/07/2026"]


def test_a_closed_period_crossing_the_18th_birthday_ends_on_it() -> None:
    dob = date(2008, 7, 1)
    p = period(
        "C11",
        datetime(2026, 6, 29, 20, 0, tzinfo=UTC),
        datetime(2026, 7, 3, 9, 0, tzinfo=UTC),
    )
    assert rows([p], {"C11": dob}) == ["C11,01/07/2008,M,29/06/2026,01/07/2026"]


def test_an_open_period_whose_birthday_is_after_the_year_stays_open() -> None:
    dob = date(2009, 7, 1)  # 18 in July 2027, after this return
    p = period("C12", datetime(2027, 3, 1, 20, 0, tzinfo=UTC))
    assert rows([p], {"C12": dob}) == ["C12,01/07/2009,M,01/03/2027,"]


def test_no_period_ends_before_it_starts() -> None:
    p = period(
        "C13",
        datetime(2026, 9, 2, 20, 0, tzinfo=UTC),
        datetime(2026, 9, 1, 20, 0, tzinfo=UTC),
    )
    export = select_periods([p], {"C13": date(2012, 1, 1)}, *YEAR)
    assert export.periods == [] and "MIS_END before MIS_START" in export.warnings[0]


def test_selection_leaves_its_input_unchanged() -> None:
    p = period("C14", datetime(2026, 6, 29, 20, 0, tzinfo=UTC))
    select_periods([p], {"C14": date(2008, 7, 1)}, *YEAR)
    assert p.end is None
