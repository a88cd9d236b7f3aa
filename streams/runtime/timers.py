"""The state of a durable timer: its due index and whether it reflects the table, and the
rebuild from a table's header lines after every rebalance.

Two timers use it: the engine's escalation timer (streams/engine/loop.py) and dispatch's retry
timer (streams/worker/timers.py). Each covers only its own worker's partitions. A timer never
changes state itself: it sends a "due" event onto a topic co-partitioned with the table, and the
consumer applies it inside stream processing, where applying it twice is harmless. The index is
derived data, so a crash loses nothing but a little time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from streams.kafka.partitioning import partition_for
from streams.runtime.due_index import DueIndex
from telemetry.logging import get_logger
from telemetry.metrics import Metrics

log = get_logger("missing_alerts.timer")


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
