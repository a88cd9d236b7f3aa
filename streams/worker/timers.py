"""A durable timer over a Faust table (dispatch's retry timer), wired into the Faust app.

It runs on every worker (not ``on_leader``) over that worker's active partitions only, because
its index is fed by the agent of the same process, and rebuilds its index from the table's
header lines once a rebalance has completed and the tables are recovered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from config.settings import Settings
from streams.runtime.clock import Clock
from streams.runtime.due_index import DueEntry
from streams.runtime.timers import TimerState, rebuild
from telemetry.logging import get_logger

log = get_logger("missing_alerts.timer")


def settled(app: Any) -> bool:
    """No rebalance in progress and the tables recovered: a timer may read the tables."""
    return not app.rebalancing and bool(app.tables.recovery.completed.is_set())


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
            if not settled(app):
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
