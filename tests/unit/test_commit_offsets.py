"""The offset rule for partitions written in transactions (streams/worker/commit_offsets.py):
commits move past commit markers at once, and never past a record still in flight."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from faust.transport import consumer as faust_consumer
from hypothesis import assume, given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.worker.commit_offsets import (
    FAUST_RULE,
    commit_past_markers,
    committable_offset,
    in_flight_floors,
)

TP = TopicPartition("p.alerts", 0)


def test_markers_between_acknowledged_records_do_not_hold_the_commit() -> None:
    # Records at 0, 2, 4, 6 (markers at 1, 3, 5): all done, so commit past the last.
    assert committable_offset(None, 6, [0, 2, 4, 6], None) == 7


def test_the_commit_stops_at_the_first_record_in_flight() -> None:
    assert committable_offset(None, 8, [0, 2, 8], in_flight=4) == 4


def test_never_past_the_last_record_delivered() -> None:
    # An acknowledgement from before a seek back (offset 9) does not let the commit run ahead
    # of what has been delivered since (up to 5).
    assert committable_offset(3, 5, [3, 4, 5, 9], None) == 6


def test_nothing_new_leaves_the_partition_alone() -> None:
    assert committable_offset(7, 6, [6], None) is None
    assert committable_offset(None, 3, [], None) is None
    assert committable_offset(None, None, [1], None) is None  # nothing delivered since a seek


def test_a_message_from_before_the_commit_does_not_hold_it() -> None:
    assert committable_offset(10, 12, [10, 11, 12], in_flight=4) == 13


@given(
    layout=st.lists(st.sampled_from(["record", "marker"]), min_size=1, max_size=60),
    data=st.data(),
)
def test_no_commit_passes_an_unacknowledged_record(layout: list[str], data: Any) -> None:
    """Whatever was delivered and whichever subset is done, the offset chosen leaves every
    record at or above it or acknowledged, and reaches the end when all are done."""
    records = [o for o, kind in enumerate(layout) if kind == "record"]
    assume(records)
    delivered = records[: data.draw(st.integers(1, len(records)))]
    acked = data.draw(st.lists(st.sampled_from(delivered), unique=True))
    pending = [o for o in delivered if o not in acked]
    got = committable_offset(None, delivered[-1], acked, min(pending) if pending else None)
    if got is not None:
        assert all(o in acked for o in delivered if o < got)
    if not pending and acked:
        assert got == delivered[-1] + 1


def _consumer(acked: list[int], read: int, unacked: list[Any]) -> Any:
    committed: defaultdict[Any, int | None] = defaultdict(lambda: None)
    return SimpleNamespace(
        _acked=defaultdict(list, {TP: list(acked)}),
        _acked_index=defaultdict(set, {TP: set(acked)}),
        _gap=defaultdict(IntervalTree),
        _committed_offset=committed,
        _read_offset=defaultdict(lambda: None, {TP: read}),
        _unacked_messages=list(unacked),
        _should_commit=lambda tp, offset: committed[tp] is None or offset > committed[tp],
    )


def _message(offset: int, acked: bool = False) -> Any:
    return SimpleNamespace(tp=TP, offset=offset, acked=acked)


def test_faust_own_rule_commits_past_a_record_in_flight() -> None:
    """Why the rule is replaced: offset 6 is a marker, 7 is being sent, 8 is done. Faust
    records the gap as 6..7 (the delivered record included) and so counts 7 as done."""
    c = _consumer(acked=[0, 1, 2, 3, 4, 5, 8], read=8, unacked=[_message(7)])
    asyncio.run(faust_consumer.Consumer._add_gap(c, TP, 6, 7))  # as _drain_messages does
    c._new_offset = lambda tp: faust_consumer.Consumer._new_offset(c, tp)
    assert FAUST_RULE(c, [TP]) == {TP: 9}  # 7 would be lost by a crash now


def test_the_patched_consumer_commits_up_to_the_record_in_flight() -> None:
    commit_past_markers()
    commit_past_markers()  # idempotent: one patch, not two layers
    c = _consumer(acked=[0, 1, 2, 3, 4, 5, 8], read=8, unacked=[_message(7), _message(5, True)])
    assert faust_consumer.Consumer._filter_committable_offsets(c, [TP]) == {TP: 7}
    assert c._acked[TP] == [8] and c._acked_index[TP] == {8}  # what the commit covers is dropped


def test_the_patched_consumer_passes_every_marker_in_one_commit() -> None:
    commit_past_markers()
    c = _consumer(acked=list(range(0, 200, 2)), read=198, unacked=[])
    assert faust_consumer.Consumer._filter_committable_offsets(c, [TP]) == {TP: 199}


def test_in_flight_floors_take_the_lowest_unacknowledged_offset() -> None:
    other = TopicPartition("p.alerts", 1)
    elsewhere = SimpleNamespace(tp=other, offset=1, acked=False)
    messages = [_message(9), _message(4), _message(2, True), elsewhere]
    assert in_flight_floors(messages) == {TP: 4, other: 1}
