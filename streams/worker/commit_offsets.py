"""Which offset a Faust worker may commit on a partition whose records come in transactions.

Faust commits, per partition, the end of the first run of consecutive acknowledged offsets
(``Consumer._new_offset``). The engine writes ``alerts`` in transactions, so every few offsets
there is a commit marker that no consumer ever receives, and the acknowledged offsets are never
consecutive for long. Faust papers over those holes with "gaps" it records as records arrive,
and that goes wrong twice:

- **Commits crawl.** A gap is recorded as ``[previous + 1, offset]``, the delivered record
  included, so once gaps are merged in that record's offset is listed twice and the run of
  consecutive numbers ends there: each commit moves past one transaction. Dispatch committed
  about 2 offsets a second per partition while sending thousands of alerts a minute (the
  recovery benchmark, 2026-12-02), so a restart replayed everything since the last commit and
  new alerts waited behind that replay.
- **A commit can pass a record still in flight.** Because the delivered record is inside its
  own gap, merging the gaps below the highest acknowledged offset counts it as done: with
  ``6`` a marker, ``7`` an SMS still being sent and ``8`` finished, Faust commits 9, and a
  crash then loses 7.

The rule here needs no gaps: a partition may be committed up to the first offset that was
delivered and is not yet acknowledged, and never past the last offset delivered. Every offset
below that either was acknowledged or was never delivered, and a consumer reading
read_committed from a committed position is delivered every data record in order, so an
offset it skipped holds a marker or an aborted record. Records Faust fetched and dropped (its
flow stopped for a rebalance) are never below a delivered one without a seek back to the
committed offsets in between, which lowers the read offset this rule stops at.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.types.tuples import ack_lock

_MARK = "_missing_alerts_commit_rule"
# Faust's own rule, kept so a test can show what it does (this module is the only patcher).
FAUST_RULE = faust_consumer.Consumer._filter_committable_offsets


def committable_offset(
    committed: int | None, read: int | None, acked: Iterable[int], in_flight: int | None
) -> int | None:
    """The offset to commit (the next one to read), or None to leave the partition alone.

    ``committed``: the partition's committed offset; ``read``: the last offset delivered (or
    the position Faust seeked to); ``acked``: offsets acknowledged since the last commit;
    ``in_flight``: the lowest offset delivered and not yet acknowledged."""
    acked = list(acked)
    if not acked or read is None:
        return None
    offset = min(max(acked), read) + 1
    if in_flight is not None and (committed is None or in_flight >= committed):
        offset = min(offset, in_flight)
    if committed is not None and offset <= committed:
        return None
    return offset


def in_flight_floors(messages: Iterable[Any]) -> dict[Any, int]:
    """Per partition, the lowest offset delivered to a stream and not yet acknowledged."""
    floors: dict[Any, int] = {}
    for message in messages:
        if not message.acked:
            tp, offset = message.tp, message.offset
            if tp not in floors or offset < floors[tp]:
                floors[tp] = offset
    return floors


def _forget_below(acked: MutableSequence[int], index: set[int], offset: int) -> None:
    """Drop what the commit covers, as Faust's own rule does once it has chosen an offset."""
    covered = [o for o in acked if o < offset]
    acked[:] = [o for o in acked if o >= offset]
    index.difference_update(covered)


def commit_past_markers() -> None:
    """Idempotent: give every Faust consumer in this process the rule above."""
    consumer = faust_consumer.Consumer
    if getattr(consumer._filter_committable_offsets, _MARK, False):
        return

    def _filter_committable_offsets(self: Any, tps: Iterable[Any]) -> dict[Any, int]:
        with ack_lock:  # acks may come from other threads; take one consistent view
            floors = in_flight_floors(list(self._unacked_messages))
        offsets: dict[Any, int] = {}
        for tp in tps:
            offset = committable_offset(
                self._committed_offset[tp], self._read_offset[tp], self._acked[tp], floors.get(tp)
            )
            if offset is not None and self._should_commit(tp, offset):
                with ack_lock:
                    _forget_below(self._acked[tp], self._acked_index[tp], offset)
                self._gap.pop(tp, None)  # unused by this rule; would only grow
                offsets[tp] = offset
        return offsets

    setattr(_filter_committable_offsets, _MARK, True)
    consumer._filter_committable_offsets = _filter_committable_offsets  # type: ignore[method-assign]
