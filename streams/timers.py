"""Durable timers over a table: the escalation timer and dispatch's retry timer.

Each runs on every worker (not ``on_leader``) over that worker's active partitions only, because
its index is fed by the agent of the same process. A timer never changes state itself: it sends
a "due" event onto a topic co-partitioned with the table, and the agent applies it inside stream
processing, where applying it twice is harmless. After every rebalance the index is rebuilt from
the table's header lines, so a crash loses nothing but a little time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from config.settings import Settings
from streams.clock import Clock
from streams.due_index import DueEntry, DueIndex
from telemetry.logging import get_logger
from telemetry.metrics import Metrics

log = get_logger("missing_alerts.timer")


def partition_for(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner (what aiokafka and Faust use for keyed records)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class RebuildObserver(Protocol):
    """Sees every table entry of the worker's active partitions during a rebuild: derived
    per-worker state (the open-episodes gauge) is recounted in the same single pass."""

    def reset(self) -> None: ...

    def add(self, key: bytes, value: bytes) -> None: ...


class TimerState:
    """The index, and whether it reflects the table (false from a rebalance to the rebuild)."""

    def __init__(
        self,
        name: str,
        *,
        metrics: Metrics | None = None,
        observer: RebuildObserver | None = None,
    ) -> None:
        self.name = name
        self.index = DueIndex()
        self.valid = False
        self.metrics = metrics or Metrics.disabled()
        self.observer = observer


def rebuild(
    state: TimerState,
    items: Any,
    *,
    active_partitions: set[int] | None,
    partitions: int,
    header: Callable[[bytes, bytes], tuple[bytes, datetime | None, str | None]],
) -> int:
    """``header(key, value)`` -> (child key for partitioning, due time, tag).
    ``active_partitions=None``: ``items`` hold only this worker's partitions already."""
    state.index.clear()
    observer = state.observer
    if observer is not None:
        observer.reset()
    for key, value in items:
        child_key, due_at, tag = header(key, value)
        if active_partitions is None or partition_for(child_key, partitions) in active_partitions:
            state.index.set(key, due_at, tag)
            if observer is not None:
                observer.add(key, value)
    state.valid = True
    state.metrics.timer_rebuilt(state.name)
    return len(state.index)


def wire_timer(
    app: Any,
    table: Any,
    settings: Settings,
    clock: Clock,
    state: TimerState,
    *,
    source_topic: str,
    header: Callable[[bytes, bytes], tuple[bytes, datetime | None, str | None]],
    emit: Callable[[DueEntry, datetime], Awaitable[None]],
) -> None:
    @app.on_partitions_revoked.connect
    async def _revoked(*_args: Any, **_kwargs: Any) -> None:
        state.valid = False

    @app.on_rebalance_complete.connect
    async def _rebalanced(*_args: Any, **_kwargs: Any) -> None:
        state.valid = False

    @app.timer(interval=settings.timer_interval_s, name=f"timer-{state.name}")
    async def scan_due() -> None:
        if not state.valid:
            if app.rebalancing or not app.tables.recovery.completed.is_set():
                return
            actives = {
                tp.partition for tp in app.assignor.assigned_actives() if tp.topic == source_topic
            }
            count = rebuild(
                state,
                table.items(),
                active_partitions=actives,
                partitions=settings.topic_partitions,
                header=header,
            )
            log.info("timer index rebuilt", timer=state.name, scheduled=count)
        now = clock.now()
        due = state.index.pop_due(now, limit=settings.timer_batch)
        for entry in due:
            await emit(entry, now)
        state.metrics.timer_tick(state.name, len(state.index), len(due))
