"""Run input records as concurrent tasks, a bounded number at a time.

Why not a batch: the old agent awaited every send of a batch before taking the next, so one
hung provider request held every other message of the worker (all partitions, retries too)
for its whole timeout. Here each record is its own task; the bound only stops an unbounded
pile-up when providers are down. ``drain`` waits for what is running, before a rebalance moves
its partitions and at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from telemetry.logging import get_logger

log = get_logger("missing_alerts.dispatch.runner")


class ItemRunner:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def submit(self, work: Coroutine[Any, Any, None]) -> None:
        """Start ``work`` once a slot is free (waits while ``limit`` records are running)."""
        await self._slots.acquire()
        task = asyncio.create_task(self._run(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not acknowledged: the record is replayed after a restart
            log.error("dispatch task failed", error=type(exc).__name__)
        finally:
            self._slots.release()

    async def drain(self, within_s: float) -> None:
        """Wait for the running records; past ``within_s`` cancel them (unacknowledged, so they
        are replayed by whoever owns the partition next)."""
        pending = set(self._tasks)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=within_s)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
