"""Episodes follow when things happened, not the order they arrived in (issue 13, part 1;
docs/episode-engine.md "Late and out-of-order information"): the cases the issue names, and a
hypothesis property that any arrival order within the lateness bound gives the same episodes
and the same SSDA903 periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alerts import AlertKind
from schemas.common import Category
from schemas.events import InputEvent
from streams.episodes.state import LATENESS_BOUND
from streams.ssda903.export import fold_records
from tests.unit.episode_helpers import (
    T0,
    Driver,
    absence,
    actions,
    detail_of,
    hours,
    minutes,
    profile,
    returned,
    update,
)


def opened_driver() -> Driver:
    driver = Driver()
    driver.send(profile(T0 - timedelta(days=30)), T0 - timedelta(days=30))
    return driver


def periods(driver: Driver) -> list[tuple[datetime, datetime | None, str]]:
    """What the export would write for this child: (start, end, category code), in order."""
    folded = fold_records(r.model_dump(mode="json") for r in driver.records)
    return sorted(
        (
            datetime.fromisoformat(p.start.isoformat()),
            p.end,
            p.category_code,
        )
        for p in folded.values()
    )


def kinds(driver: Driver) -> list[AlertKind]:
    return [a.kind for a in driver.alerts]


# --------------------------------------------------------------------------- the cases


def test_an_update_from_before_the_return_amends_the_closed_episode_without_alerting() -> None:
    driver = opened_driver()
    driver.send(absence(T0, category=Category.AWAY), T0)
    code = driver.code
    driver.send(returned(T0 + hours(3)), T0 + hours(3))
    sent = len(driver.alerts)
    effects = driver.send(
        update(T0 + hours(1), "category", code=code, category=Category.MISSING), T0 + hours(4)
    )
    assert actions(effects) == ["amended"] and effects.alerts == []
    assert effects.records[0].detail.as_dict()["category_code"] == "M"
    assert len(driver.alerts) == sent and not driver.has_open
    assert periods(driver) == [(T0, T0 + hours(3), "M")]


def test_an_update_from_after_the_return_is_ignored_with_its_reason() -> None:
    driver = opened_driver()
    driver.send(absence(T0), T0)
    code = driver.code
    driver.send(returned(T0 + hours(3)), T0 + hours(3))
    effects = driver.send(
        update(T0 + hours(5), "category", code=code, category=Category.AWAY), T0 + hours(5)
    )
    assert [(r.action, r.detail.as_dict()["reason"]) for r in effects.records] == [
        ("ignored", "episode_closed")
    ]
    assert periods(driver) == [(T0, T0 + hours(3), "M")]


def test_a_return_that_arrives_before_its_absence_closes_it_with_one_notice() -> None:
    driver = opened_driver()
    held = driver.send(returned(T0 + hours(2)), T0 + hours(2))
    assert actions(held) == ["return_held"] and held.alerts == []
    effects = driver.send(absence(T0, T0 + minutes(30)), T0 + hours(2) + minutes(5))
    assert actions(effects)[:2] == ["opened", "closed"]
    assert effects.records[0].detail.as_dict()["late"] is True
    assert [a.kind for a in effects.alerts] == [AlertKind.LATE_REPORT]  # no ladder
    notice = effects.alerts[0]
    assert notice.returned_at == T0 + hours(2)
    assert notice.rhi_due_at == T0 + hours(2) + timedelta(hours=72)
    assert not driver.has_open
    assert periods(driver) == [(T0, T0 + hours(2), "M")]
    # The interview timers run as usual from the return.
    later = driver.tick(T0 + hours(2) + timedelta(hours=48))
    assert [a.kind for a in later.alerts] == [AlertKind.RHI_REMINDER]


def test_a_past_episode_reported_after_a_later_one_closed_is_recorded_at_its_own_dates() -> None:
    driver = opened_driver()
    day = timedelta(days=1)
    driver.send(absence(T0 + 3 * day), T0 + 3 * day)  # the later episode, in time
    driver.send(returned(T0 + 3 * day + hours(5)), T0 + 3 * day + hours(5))
    ladder_before = len(driver.alerts)
    # Days later: a carer's absence report from before, then its return.
    late_absence = driver.send(absence(T0, T0 + minutes(20)), T0 + 5 * day)
    assert late_absence.alerts == [] and actions(late_absence) == ["amended"]
    late_return = driver.send(returned(T0 + hours(6)), T0 + 5 * day + minutes(1))
    assert [a.kind for a in late_return.alerts] == [AlertKind.LATE_REPORT]  # one notice
    assert len(driver.alerts) == ladder_before + 1
    assert periods(driver) == [
        (T0, T0 + hours(6), "M"),
        (T0 + 3 * day, T0 + 3 * day + hours(5), "M"),
    ]


def test_an_earlier_absence_reported_while_a_later_one_is_open_waits_for_its_return() -> None:
    driver = opened_driver()
    driver.send(absence(T0 + hours(10)), T0 + hours(10))
    open_code = driver.code
    driver.send(absence(T0, T0 + minutes(10)), T0 + hours(10) + minutes(1))
    effects = driver.send(returned(T0 + hours(4)), T0 + hours(10) + minutes(2))
    assert [a.kind for a in effects.alerts] == [AlertKind.LATE_REPORT]
    assert driver.has_open and driver.code == open_code  # the later absence is still open
    assert driver.state is not None and driver.state.open_episode is not None
    assert driver.state.open_episode.last_seen_at == T0 + hours(10)
    assert periods(driver) == [(T0, T0 + hours(4), "M"), (T0 + hours(10), None, "M")]


def test_a_return_between_two_reports_of_the_open_episode_splits_them() -> None:
    """The second absence came while the first was open (so it was merged); the return of the
    first, which arrives later, shows the child came back in between: two episodes."""
    driver = opened_driver()
    driver.send(absence(T0), T0)
    first = driver.code
    driver.send(absence(T0 + hours(5), T0 + hours(5)), T0 + hours(5))
    effects = driver.send(returned(T0 + hours(2)), T0 + hours(6))
    assert actions(effects).index("closed") < actions(effects).index("opened")
    assert detail_of(effects, "opened")["split_from"] == first
    assert AlertKind.RETURNED in [a.kind for a in effects.alerts]  # those told hear of it
    assert driver.has_open and driver.code != first
    assert periods(driver) == [(T0, T0 + hours(2), "M"), (T0 + hours(5), None, "M")]


def test_a_return_held_expires_after_the_lateness_bound() -> None:
    driver = opened_driver()
    driver.send(returned(T0), T0)
    driver.tick(T0 + LATENESS_BOUND)
    effects = driver.send(absence(T0 - hours(1), T0 + LATENESS_BOUND), T0 + LATENESS_BOUND)
    assert "opened" in actions(effects) and driver.has_open  # no return known any more


# ---------------------------------------------------------------- the order property


@dataclass(frozen=True)
class Truth:
    start: datetime
    end: datetime
    category: str


@dataclass(frozen=True)
class History:
    truths: list[Truth]
    timed: list[tuple[datetime, InputEvent]]  # (arrives, event), in the order written
    needs: dict[int, int]  # an update's index -> its absence's index (it never comes first)


@st.composite
def histories(draw: Any) -> History:
    """A child's episodes (never overlapping) and, for each event, when it arrives: an
    absence report made while the child was away, maybe a second one, maybe a category
    update, a return naming no episode; every arrival within the lateness bound of when it
    happened, an update never before the absence it is about."""
    count = draw(st.integers(1, 4))
    at = T0
    truths: list[Truth] = []
    timed: list[tuple[datetime, InputEvent]] = []
    needs: dict[int, int] = {}
    span = LATENESS_BOUND / 2

    def delay() -> timedelta:
        return timedelta(minutes=draw(st.integers(0, int(span.total_seconds() // 60))))

    for _ in range(count):
        start = at + timedelta(minutes=draw(st.integers(10, 3 * 24 * 60)))
        length = timedelta(minutes=draw(st.integers(20, 3 * 24 * 60)))
        end = start + length
        cat = draw(st.sampled_from([Category.MISSING, Category.AWAY]))
        reported = start + length * draw(st.floats(0, 0.3))
        first = absence(start, reported, category=cat)
        absence_arrives, first_index = reported + delay(), len(timed)
        timed.append((absence_arrives, first))
        stated = [(reported, str(first.event_id), cat)]
        if draw(st.booleans()):
            again = start + length * draw(st.floats(0.35, 0.6))
            seen = start + (again - start) * draw(st.floats(0, 1))
            cat2 = draw(st.sampled_from([Category.MISSING, Category.AWAY]))
            second = absence(seen, again, category=cat2)
            timed.append((again + delay(), second))
            stated.append((again, str(second.event_id), cat2))
        if draw(st.booleans()):
            when = start + length * draw(st.floats(0.65, 0.95))
            cat3 = draw(st.sampled_from([Category.MISSING, Category.AWAY]))
            change = update(when, "category", category=cat3)
            needs[len(timed)] = first_index
            timed.append((max(when + delay(), absence_arrives), change))
            stated.append((when, str(change.event_id), cat3))
        timed.append((end + delay(), returned(end)))
        truths.append(Truth(start, end, max(stated)[2].code))
        at = end
    return History(truths, timed, needs)


def replay(timed: list[tuple[datetime, InputEvent]], order: list[int] | None = None) -> Driver:
    """Deliver in arrival order (ties in the order written: one child's events share a
    partition), or in ``order``, each at its arrival time (never before what came before)."""
    driver = opened_driver()
    order = order or sorted(range(len(timed)), key=lambda i: (timed[i][0], i))
    now = T0
    for i in order:
        arrives, event = timed[i]
        now = max(now, arrives)
        driver.send(event, now)
    return driver


def expected(history: History) -> list[tuple[datetime, datetime | None, str]]:
    return [(t.start, t.end, t.category) for t in history.truths]


@settings(max_examples=300, deadline=None)
@given(history=histories())
def test_any_arrival_order_within_the_bound_gives_the_same_periods(history: History) -> None:
    driver = replay(history.timed)
    assert periods(driver) == expected(history)
    assert not driver.has_open
    state = driver.state
    assert state is not None
    episodes = sorted(state.recent_episodes, key=lambda e: e.last_seen_at)
    assert [(e.last_seen_at, e.returned_at, e.category.code) for e in episodes] == expected(history)


@settings(max_examples=300, deadline=None)
@given(history=histories(), data=st.data())
def test_any_permutation_delivered_at_once_gives_the_same_periods(
    history: History, data: Any
) -> None:
    """Everything arrives after the last event, in any order (an update after its absence)."""
    order = list(data.draw(st.permutations(range(len(history.timed)))))
    for update_at, absence_at in history.needs.items():
        if order.index(update_at) < order.index(absence_at):
            order.remove(update_at)
            order.insert(order.index(absence_at) + 1, update_at)
    last = max(arrives for arrives, _ in history.timed)
    timed = [(last, event) for _, event in history.timed]
    driver = replay(timed, order)
    assert periods(driver) == expected(history)
    assert not driver.has_open


def test_the_generator_really_reorders() -> None:
    """A fixed history whose events arrive out of order is replayed to the truth, so a change
    in the generator cannot hide the property's point."""
    second = absence(T0 + hours(10), T0 + hours(10))
    first = absence(T0, T0 + minutes(5), category=Category.AWAY)
    timed: list[tuple[datetime, InputEvent]] = [
        (T0 + hours(20), returned(T0 + hours(15))),
        (T0 + hours(11), second),
        (T0 + hours(21), returned(T0 + hours(3))),
        (T0 + hours(22), first),
    ]
    driver = replay(timed)
    assert periods(driver) == [(T0, T0 + hours(3), "A"), (T0 + hours(10), T0 + hours(15), "M")]
