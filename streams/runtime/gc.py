"""Garbage-collector policy for the worker process (which answers the API) and the engine.

A full (generation 2) collection walks every tracked object: in a worker holding Faust, aiokafka
and the tables' Python state that is 75-90 ms with the event loop stopped, every few seconds
under load, and it was the whole p99 tail of POST /v1/absences (bench/api_throughput.py, 118
ms before, 82 ms after). So, every ``freeze_every`` seconds, collect what is unfrozen (objects
made since the last round: short) and freeze the survivors, which later collections skip. A
frozen object that later becomes part of a garbage cycle is not reclaimed until the next full
round, every ``full_every`` seconds: one pause of the old size per ``full_every`` instead of
one every few seconds, and no leak. The engine process uses it too: its batches allocate fast,
and re-walking its long-lived state in every full collection is CPU it does not spend applying
events.
"""

from __future__ import annotations

import asyncio
import gc
import time

from telemetry.logging import get_logger

log = get_logger("missing_alerts.gc")


class GcPolicy:
    def __init__(self, freeze_every: float, full_every: float) -> None:
        self.freeze_every = freeze_every
        self.full_every = full_every
        self._last_full = time.monotonic()

    def round(self) -> None:
        if time.monotonic() - self._last_full >= self.full_every:
            gc.unfreeze()
            started = time.perf_counter()
            gc.collect()
            self._last_full = time.monotonic()
            log.debug("full collection", seconds=round(time.perf_counter() - started, 3))
        else:
            gc.collect()
        gc.freeze()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.freeze_every)
            self.round()
