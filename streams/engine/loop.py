"""The episode engine's batch loop: poll a batch, apply it, make it durable, store it.

Why a plain loop and not a Faust agent: Faust's per-record path (stream plumbing, sensors, one
changelog send per table write) cost about 80% of the engine's CPU, five times the domain logic
itself (docs/engine-runtime.md). Here every cost that can be per batch is.

The loop talks to Kafka only through its port (streams/engine/ports.py): the real broker in
production (streams/engine/kafka_io.py), an in-memory one in unit tests
(streams/engine/local_broker.py). One rule per batch keeps the guarantees:

1. apply every record to the pure domain (streams/engine/batch.py);
2. hand alerts, audit records, dead letters and each changed child's new state (to the
   compacted changelog topic), with the input offsets they consume, to the sink, which returns
   once all are durable and the offsets committed (every batch, or every
   ENGINE_COMMIT_INTERVAL_S: streams/engine/checkpoint.py);
3. write the new states to the local store together with the changelog offset.

A crash before 2 completes replays the batch; a crash after it replays it against the state
already on the changelog, where every event id is seen and nothing fires twice (and an alert
re-sent in between keeps its id, which dispatch drops). The local store never runs ahead of
the changelog, so after a restart or a rebalance it catches up by reading the changelog from
its stored offset (streams/engine/restore.py).

The escalation timer lives here too: it scans only this engine's partitions (an in-memory index
of next-due times, rebuilt from the store's header lines after every assignment) and sends
"due" events onto the due topic, co-partitioned with the events; the loop applies them like any
input, and the state machine ignores a due event for a step already fired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from config.policy import Policy
from config.settings import Settings
from schemas.events import TimerDue
from schemas.wire import dumps
from streams.engine.batch import BatchResult, process_batch
from streams.engine.checkpoint import Checkpoint
from streams.engine.output import EngineTopics, batch_output, by_source
from streams.engine.ports import InRecord, Restore, Sink, Source
from streams.engine.store import StateStore
from streams.episodes.codec import decode_header, decode_open
from streams.kafka.partitioning import partition_for
from streams.kafka.sending import OutRecord
from streams.kafka.topics import topic_specs
from streams.runtime.clock import Clock
from streams.runtime.due_index import DueEntry
from streams.runtime.failpoints import failpoint
from streams.runtime.timers import TimerState, rebuild
from telemetry.logging import get_logger, log_engine_effects
from telemetry.metrics import Metrics

log = get_logger("missing_alerts.engine")


class Engine:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        clock: Clock,
        metrics: Metrics,
        store: StateStore,
        *,
        source: Source,
        sink: Sink,
        restore: Restore,
        url: str,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings, self.policy, self.clock, self.metrics = settings, policy, clock, metrics
        self.store = store
        self.source, self.sink, self.restore = source, sink, restore
        self.url = url
        self.topics = EngineTopics.from_settings(settings)
        self.timer = TimerState(
            "escalation", metrics=metrics, observer=metrics.open_episode_tracker(decode_open)
        )
        self.owners: dict[int, str] = {}  # partition -> web URL of its engine, whole group
        self.owned: set[int] = set()  # partitions this engine holds, restored and indexed
        self.ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._on_crash = on_crash
        self._held = Checkpoint()  # batches applied, not yet delivered (commit interval)

    # -- lifecycle ----------------------------------------------------------------------------

    async def join(self) -> None:
        """Connect the port and join the group (the assignment restores the partitions)."""

        def set_owners(owners: dict[int, str]) -> None:
            self.owners = owners

        await self.sink.start()
        await self.source.start(self, set_owners)

    async def start(self) -> None:
        """Join, then run the batch loop and the timer until ``stop``."""
        await self.join()
        self._tasks = [
            asyncio.create_task(self._guard(self._consume()), name="engine-consume"),
            asyncio.create_task(self._guard(self._tick()), name="engine-timer"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            if task.get_name() == "engine-timer":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:
            await self._flush()
        await self.source.stop()  # leaves the group: its partitions move on at once
        await self.sink.stop()
        self.store.close()

    async def _guard(self, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken engine must take the worker down, loudly
            log.exception("engine stopped on an unexpected error", error=type(exc).__name__)
            if self._on_crash is not None:
                self._on_crash(exc)
            raise

    # -- rebalancing -------------------------------------------------------------------------

    async def partitions_revoked(self) -> None:
        # Waits for the batch in progress: it finishes, is delivered and stored, before the
        # group may hand its partitions to another engine.
        async with self._lock:
            await self._flush()  # what is held goes out before the partitions do
            self.ready.clear()
            self.timer.valid = False
            self.owned = set()
            await self.sink.revoked()

    async def partitions_assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            # Exactly once: this fences whoever owned these partitions before, so nothing
            # lands on their changelog after the restore below has read it.
            await self.sink.assigned(set(partitions))
            restored = await self.restore(self.store, self.topics.state_changelog, partitions)
            self.owned = set(partitions)
            self._rebuild_index()
            self.ready.set()
        log.info(
            "engine partitions assigned",
            partitions=sorted(partitions),
            changelog_records_restored=restored,
            scheduled=len(self.timer.index),
        )

    def _rebuild_index(self) -> None:
        rebuild(
            self.timer,
            (entry for partition in sorted(self.owned) for entry in self.store.items(partition)),
            active_partitions=None,  # the store is read by partition: all of them are ours
            partitions=self.settings.topic_partitions,
            header=lambda key, value: (key, *decode_header(value)),
        )

    # -- the loop ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        while not self._stopping:
            await self.step(timeout_ms=200)

    async def step(self, *, timeout_ms: int = 0) -> int:
        """One poll and, if it brought records of owned partitions, one batch applied (and,
        when the commit interval has passed, delivered and stored); the number of records
        applied. (The loop's body; tests call it to run batch by batch.)"""
        fetched = await self.source.poll(timeout_ms, self.settings.engine_batch_max)
        async with self._lock:
            # Records fetched just before a rebalance took their partition are left to the
            # new owner (it reads from the last commit).
            mine = {p: recs for p, recs in fetched.items() if p in self.owned and recs}
            if mine:
                await self._apply(mine)
            if self._held.due(self._seconds(), self.settings.engine_commit_interval_s):
                await self._flush()
            return sum(len(recs) for recs in mine.values())

    async def _apply(self, fetched: Mapping[int, Sequence[InRecord]]) -> None:
        records = [rec for recs in fetched.values() for rec in recs]
        partition_of = {rec.key: rec.partition for rec in records}
        store, held = self.store, self._held

        def read(key: bytes) -> bytes | None:
            partition = partition_of[key]
            found, value = held.held(partition, key)
            return value if found else store.get(partition, key)

        result = process_batch(
            records,
            read=read,
            policy=self.policy,
            now=self.clock.now,
            skew_tolerance=self.settings.clock_skew_tolerance,
        )
        out, states = batch_output(result, self.topics, self.clock.now())
        # Sent now (exactly once: into the open transactions, unseen until the commit).
        await self.sink.send(by_source(out, fetched))
        held.add(states, result, self._seconds())

    def _seconds(self) -> float:
        return self.clock.now().timestamp()

    async def _flush(self) -> None:
        """Commit what was sent (durably, with its offsets), then store it, then index it."""
        held, self._held = self._held, Checkpoint()
        if not held:
            return
        written = await self.sink.commit()
        failpoint("engine.after_commit_before_store")
        changelog = self.topics.state_changelog
        for partition, entries in held.states.items():
            self.store.write(partition, entries, written[(changelog, partition)])
        failpoint("engine.after_store_before_poll")
        for result in held.results:
            for key, write in result.writes.items():
                self.timer.index.set(key, write.due_at, write.due_code)
            self._observe(result)

    def _observe(self, result: BatchResult) -> None:
        """Metrics and log lines of a batch already durable: a failure here is logged, never
        allowed to stop the engine (the batch is done)."""
        try:
            self.metrics.observe_engine_batch(result)
            log_engine_effects(log, result.alerts, result.records)
        except Exception as exc:
            log.error("engine batch not observed", error=type(exc).__name__)

    # -- timer -------------------------------------------------------------------------------

    async def _tick(self) -> None:
        interval = self.settings.timer_interval_s
        while not self._stopping:
            await asyncio.sleep(interval)
            await self.tick()

    async def tick(self) -> int:
        """Send a due event per child whose next step is due now; the number sent."""
        if not self.ready.is_set() or not self.timer.valid:
            return 0
        now = self.clock.now()
        due = self.timer.index.pop_due(now, limit=self.settings.timer_batch)
        if due:
            await self._emit_due(due, now)
        self.metrics.timer_tick(self.timer.name, len(self.timer.index), len(due))
        return len(due)

    async def _emit_due(self, due: list[DueEntry], now: datetime) -> None:
        """Not waited on durably: an entry whose due event is lost stays in the index with a
        retry time (DueIndex.pop_due) and is sent again."""
        n = self.settings.topic_partitions
        records = [
            OutRecord(
                self.topics.due,
                entry.key,
                dumps(
                    TimerDue(
                        occurred_at=now,
                        child_ref=entry.key.decode(),
                        episode_code=entry.tag,
                        due_at=entry.due_at,
                    )
                ),
                partition=partition_for(entry.key, n),
            )
            for entry in due
        ]
        failed = await self.sink.emit(records)
        if failed:
            log.warning("due events not sent; retried later", failed=failed)

    # -- for the internal state endpoint (streams/engine/process.py) --------------------------

    def partition_of(self, child: bytes) -> int:
        return partition_for(child, self.settings.topic_partitions)


def partition_counts(settings: Settings) -> dict[str, int]:
    return {spec.name: spec.partitions for spec in topic_specs(settings).values()}
