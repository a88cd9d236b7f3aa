"""The escalation timer: emits TimerDue events for children whose next step is due.

Runs on every worker (not ``on_leader``) and only over that worker's active partitions, because
the index is fed by the engine agent of the same process. It never changes state itself: a
TimerDue goes onto the due topic (co-partitioned with events) and the engine applies it inside
stream processing, where applying it twice is harmless. After each rebalance the index is rebuilt
from the table, so a crash loses nothing but a little time.
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2

from schemas.events import TimerDue
from streams.app import Resources, Wiring
from streams.due_index import DueIndex
from streams.table_codec import decode_header
from telemetry.logging import get_logger

log = get_logger("missing_alerts.timer")


def partition_for(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner (what aiokafka and Faust use for keyed records)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class TimerState:
    """Whether the index reflects the table: false between a rebalance and the next rebuild."""

    def __init__(self) -> None:
        self.index = DueIndex()
        self.valid = False


def rebuild(state: TimerState, w: Wiring, r: Resources) -> int:
    n = r.settings.topic_partitions
    events_topic = r.settings.topic("events")
    actives = {tp.partition for tp in w.app.assignor.assigned_actives() if tp.topic == events_topic}
    state.index.clear()
    for key, value in w.episodes.items():
        if partition_for(key, n) not in actives:
            continue  # a standby copy: its owner's timer handles it
        due_at, code = decode_header(value)
        state.index.set(key, due_at, code)
    state.valid = True
    return len(state.index)


def wire_timer(w: Wiring, r: Resources, timer: TimerState) -> None:
    @w.app.on_partitions_revoked.connect
    async def _revoked(*_args: Any, **_kwargs: Any) -> None:
        timer.valid = False

    @w.app.on_rebalance_complete.connect
    async def _rebalanced(*_args: Any, **_kwargs: Any) -> None:
        timer.valid = False

    @w.app.timer(interval=r.settings.timer_interval_s)
    async def scan_due() -> None:
        if not w.app.rebalancing and not timer.valid:
            if not w.app.tables.recovery.completed.is_set():
                return
            count = rebuild(timer, w, r)
            log.info("timer index rebuilt", scheduled=count)
        if not timer.valid:
            return
        now = r.clock.now()
        for entry in timer.index.pop_due(now, limit=r.settings.timer_batch):
            await w.due.send(
                key=entry.key,
                value=TimerDue(
                    occurred_at=now,
                    child_ref=entry.key.decode(),
                    episode_code=entry.episode_code,
                    due_at=entry.due_at,
                ),
            )
