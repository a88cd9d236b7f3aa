"""The duty desk's read model (issue 14, part 1): what the engine writes per episode, and the
list every worker answers from memory (streams/episodes/views.py, streams/web/episode_list.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import Category, RiskFlag, Tier
from streams.episodes.views import EpisodeSummary, codes_of, sort_key, summarise, touched
from streams.web.access import ApiError
from streams.web.auth import ApiKey, Scope
from streams.web.episode_index import EpisodeIndex
from streams.web.episode_list import select
from streams.web.episode_query import query
from streams.web.episode_status import carer_status
from tests.unit.episode_helpers import (
    T0,
    Driver,
    absence,
    ack,
    check_in,
    hours,
    minutes,
    profile,
    returned,
)


def _summary_bytes(driver: Driver, code: str | None = None) -> bytes:
    assert driver.state is not None
    episode = driver.state.open_episode or driver.state.recent_episodes[-1]
    s = summarise(driver.state, episode, driver.policy, T0 + hours(1))
    return s.__pydantic_serializer__.to_json(s)


def _child(
    name: str, *, flags: list[RiskFlag] | None = None, seen: timedelta = timedelta(0)
) -> Driver:
    driver = Driver()
    driver.send(profile(T0 - timedelta(days=1), child=name), T0)
    driver.send(absence(T0 - seen, T0, flags=flags or [], child=name), T0)
    return driver


def test_the_summary_says_who_acknowledged_and_what_is_next() -> None:
    driver = _child("C1", flags=[RiskFlag.TRAFFICKING_SUSPECTED])
    driver.send(ack(T0 + timedelta(minutes=5), driver.code, child="C1"), T0 + timedelta(minutes=5))
    assert driver.state is not None and driver.state.open_episode is not None
    s = summarise(driver.state, driver.state.open_episode, driver.policy, T0)
    assert s.status == "open" and s.tier is Tier.HIGH and s.initials == "JD"
    assert list(s.acknowledged_by) == ["sw-1"]
    assert s.next_step == "high-t2h"  # the until-acknowledged step was silenced
    assert s.next_due_at == T0 + hours(2)
    text = s.model_dump_json()
    assert "Jane" not in text and "Secret" not in text and "asthma" not in text


def test_a_spent_ladder_shows_the_next_re_notify() -> None:
    """Reported three hours after last seen, a high-risk absence fires its whole ladder at
    once; what happens next is the unacknowledged step's repeat, 15 minutes on."""
    driver = _child("C1", flags=[RiskFlag.TRAFFICKING_SUSPECTED], seen=hours(3))
    assert driver.state is not None and driver.state.open_episode is not None
    s = summarise(driver.state, driver.state.open_episode, driver.policy, T0)
    assert s.next_step == "high-t30m+r1" and s.next_due_at == T0 + timedelta(minutes=15)


def test_touched_names_the_changed_episodes_and_those_that_left() -> None:
    driver = _child("C1")
    code = driver.code
    before = codes_of(driver.state)
    effects = driver.send(returned(T0 + hours(1), child="C1"), T0 + hours(1))
    assert driver.state is not None
    changed, gone = touched(before, driver.state, effects.records)
    assert [e.code for e in changed] == [code] and gone == []
    # A check-in that changes no episode records nothing, so no summary is written for it.
    quiet = driver.send(check_in(T0 + hours(2), child="C1"), T0 + hours(2))
    assert quiet.records == []
    assert touched(codes_of(driver.state), driver.state, quiet.records) == ([], [])
    later = codes_of(driver.state)
    effects = driver.send(profile(T0, child="C1"), T0 + timedelta(days=400))  # pruned by now
    assert touched(later, driver.state, effects.records) == ([], [code])


def test_the_list_puts_open_high_risk_and_longest_missing_first_and_pages() -> None:
    index = EpisodeIndex()
    kids = {
        "A": _child("A"),
        "B": _child("B", flags=[RiskFlag.TRAFFICKING_SUSPECTED], seen=hours(1)),
        "C": _child("C", seen=hours(3)),
        "D": _child("D", flags=[RiskFlag.TRAFFICKING_SUSPECTED]),
    }
    for driver in kids.values():
        index.apply(driver.code.encode(), _summary_bytes(driver))
    since = T0 - timedelta(days=7)
    order = [
        s.child_ref
        for s in select(
            index, authorities=["LA-EXAMPLE"], status="open", closed_since=since, offset=0, limit=10
        ).episodes
    ]
    assert order == ["B", "D", "C", "A"]  # high (longest first), then standard
    first, cursor, total = select(
        index, authorities=["LA-EXAMPLE"], status="open", closed_since=since, offset=0, limit=3
    )
    assert len(first) == 3 and cursor == 3 and total == 4
    rest, end, _ = select(
        index, authorities=["LA-EXAMPLE"], status="open", closed_since=since, offset=3, limit=3
    )
    assert [e[1] for e in rest] == ["A"] and end is None
    assert (
        select(
            index, authorities=["LA-OTHER"], status="all", closed_since=since, offset=0, limit=10
        ).episodes
        == []
    )
    index.apply(kids["D"].code.encode(), None)  # a deleted summary leaves the list
    assert len(index) == 3


def test_an_unreadable_view_keeps_the_old_one_and_never_raises() -> None:
    index = EpisodeIndex()
    driver = _child("A")
    index.apply(driver.code.encode(), _summary_bytes(driver))
    for hostile in (b"{", b"\xff\xfe", b'{"episode_code": 1}', b"[" * 5000):
        index.apply(driver.code.encode(), hostile)
    index.apply(None, b"x")
    assert len(index) == 1


KEY = ApiKey(
    id="desk",
    organisation="LA duty desk",
    sha256="0" * 64,
    local_authorities=frozenset({"LA-EXAMPLE"}),
    scopes=frozenset({Scope.EPISODES_READ}),
)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "missing"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "\uff11\uff10"}, "limit"),  # full-width digits are not a number here
        ({"cursor": "-1"}, "cursor"),
        ({"closed_days": "9" * 40}, "closed_days"),
        ({"cursor": "9" * 5000}, "cursor"),  # int() of this many digits raises ValueError
        ({"local_authority": "\ufffd\ufffd"}, "local_authority"),  # %ff%fe, decoded
        ({"local_authority": "LA\x00"}, "local_authority"),
        ({"local_authority": "A" * 65}, "local_authority"),
        ({"local_authority": ""}, "local_authority"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_parameter(params: dict[str, str], field: str) -> None:
    with pytest.raises(ApiError) as err:
        query(KEY, MappingProxyType(params))
    assert err.value.status == 400 and err.value.detail["field"] == field


def test_another_authority_is_forbidden() -> None:
    with pytest.raises(ApiError) as err:
        query(KEY, {"local_authority": "LA-OTHER"})
    assert err.value.status == 403
    assert query(KEY, {}) == (["LA-EXAMPLE"], "open", 0, 50, 7)


def test_the_index_knows_each_childs_open_episode_until_it_closes_or_goes() -> None:
    index = EpisodeIndex()
    driver = _child("A")
    code = driver.code
    index.apply(code.encode(), _summary_bytes(driver))
    assert index.open_code("A") == code and index.open_code("B") is None
    driver.send(returned(T0 + hours(1), child="A"), T0 + hours(1))
    index.apply(code.encode(), _summary_bytes(driver))
    assert index.open_code("A") is None and index.get(code) is not None
    index.apply(code.encode(), None)  # tombstone
    assert index.get(code) is None and len(index) == 0


def test_the_carer_sees_who_acknowledged_by_rota_name_only() -> None:
    driver = _child("C1", flags=[RiskFlag.TRAFFICKING_SUSPECTED])
    driver.send(ack(T0 + minutes(4), driver.code, "dsw-day", child="C1"), T0 + minutes(4))
    assert driver.state is not None and driver.state.open_episode is not None
    summary = summarise(driver.state, driver.state.open_episode, driver.policy, T0)
    people = driver.policy.rota.people
    answer = carer_status(summary, people)
    assert answer["status"] == "open"
    assert answer["acknowledged"] == [
        {"by": people["dsw-day"].display_name, "at": (T0 + minutes(4)).isoformat()}
    ]
    text = json.dumps(answer)
    for private in (people["dsw-day"].phone, people["dsw-day"].email, "JD", "Jane"):
        assert private and private not in text


_BASE = T0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),  # which episode
            st.sampled_from(["open", "closed", "cancelled", None]),  # None: a tombstone
            st.sampled_from(list(Tier)),
            st.integers(0, 600),  # minutes since last seen
            st.sampled_from(["LA-EXAMPLE", "LA-OTHER"]),
        ),
        max_size=120,
    ),
    st.sampled_from(["open", "closed", "cancelled", "all"]),
    st.integers(0, 40),
    st.integers(1, 25),
)
def test_the_kept_sorted_index_pages_like_a_full_sort(
    ops: list[tuple[int, str | None, Tier, int, str]], status: str, offset: int, limit: int
) -> None:
    """The index keeps each list sorted as records come (insert, update, move between lists,
    delete); every page must be what sorting and filtering everything would give."""
    index, model = EpisodeIndex(), {}
    for n, state, tier, ago, authority in ops:
        code = f"E{n:05d}"
        if state is None:
            index.apply(code.encode(), None)
            model.pop(code, None)
            continue
        summary = EpisodeSummary(
            episode_code=code,
            child_ref=f"K{n}",
            local_authority=authority,
            initials=None,
            status=state,
            tier=tier,
            category=Category.MISSING,
            last_seen_at=_BASE - timedelta(minutes=ago),
            reported_at=_BASE,
            returned_at=None if state == "open" else _BASE - timedelta(minutes=ago % 50),
            acknowledged_by={},
            next_step=None,
            next_due_at=None,
            late=False,
            updated_at=_BASE,
        )
        index.apply(code.encode(), summary.model_dump_json().encode())
        model[code] = summary
    since = _BASE - timedelta(minutes=25)
    want = [
        s
        for s in sorted(model.values(), key=sort_key)
        if s.local_authority == "LA-EXAMPLE"
        and (status == "all" or s.status == status)
        and (s.status == "open" or (s.returned_at or s.updated_at) >= since)
    ]
    page = select(
        index,
        authorities=["LA-EXAMPLE"],
        status=status,
        closed_since=since,
        offset=offset,
        limit=limit,
    )
    assert page.episodes == want[offset : offset + limit]
    assert page.total == len(want)
    assert page.next_offset == (offset + limit if offset + limit < len(want) else None)
    assert index.ordered() == sorted(model.values(), key=sort_key) and len(index) == len(model)
    assert all(index.open_code(s.child_ref) == c for c, s in model.items() if s.status == "open")


def test_the_page_body_is_the_json_of_its_summaries() -> None:
    index = EpisodeIndex()
    kids = [_child(n, flags=[RiskFlag.CSE] if n == "B" else []) for n in ("A", "B", "C")]
    for kid in kids:
        index.apply(kid.code.encode(), _summary_bytes(kid))
    since = T0 - timedelta(days=7)
    page = select(
        index, authorities=["LA-EXAMPLE"], status="open", closed_since=since, offset=0, limit=2
    )
    body = json.loads(page.body())
    assert body["total"] == 3 and body["next_cursor"] == "2"
    assert body["episodes"] == [s.model_dump(mode="json") for s in page.episodes]
    last = select(
        index, authorities=["LA-EXAMPLE"], status="open", closed_since=since, offset=2, limit=2
    )
    assert json.loads(last.body())["next_cursor"] is None
