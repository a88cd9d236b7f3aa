from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.runtime.due_index import DueIndex

T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pops_only_due_entries_in_order() -> None:
    index = DueIndex()
    index.set(b"c", at(30), "CCCC")
    index.set(b"a", at(10), "AAAA")
    index.set(b"b", at(20), "BBBB")
    assert [e.key for e in index.pop_due(at(25))] == [b"a", b"b"]
    assert index.next_due() == at(30)


def test_rescheduling_replaces_previous_time() -> None:
    index = DueIndex()
    index.set(b"a", at(10), "AAAA")
    index.set(b"a", at(100), "AAAA")
    assert index.pop_due(at(50)) == []
    index.set(b"a", None, None)
    assert index.pop_due(at(500)) == [] and len(index) == 0


def test_popped_entry_is_retried_unless_rescheduled() -> None:
    index = DueIndex(retry_after=timedelta(seconds=30))
    index.set(b"a", at(10), "AAAA")
    assert len(index.pop_due(at(10))) == 1
    assert index.pop_due(at(20)) == []  # in flight
    again = index.pop_due(at(41))
    assert [e.key for e in again] == [b"a"]  # the due event was lost: emit again
    index.set(b"a", at(3600), "AAAA")  # engine processed it and moved on
    assert index.pop_due(at(1000)) == []


def test_limit_leaves_the_rest_for_the_next_tick() -> None:
    index = DueIndex()
    for i in range(10):
        index.set(str(i).encode(), at(i), "CODE")
    assert len(index.pop_due(at(100), limit=4)) == 4
    assert len(index.pop_due(at(100), limit=100)) == 6


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 1000))),
        max_size=200,
    ),
    st.integers(0, 1000),
)
def test_matches_a_plain_dict_model(ops: list[tuple[int, int | None]], now_s: int) -> None:
    index = DueIndex(retry_after=timedelta(days=1))
    model: dict[bytes, int] = {}
    for k, due in ops:
        key = str(k).encode()
        index.set(key, at(due) if due is not None else None, "CODE" if due is not None else None)
        if due is None:
            model.pop(key, None)
        else:
            model[key] = due
    popped = {e.key: e.due_at for e in index.pop_due(at(now_s), limit=10_000)}
    assert popped == {k: at(v) for k, v in model.items() if v <= now_s}
