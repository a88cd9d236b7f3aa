"""The episode engine's Kafka shell: consume a batch, apply it, make it durable, commit.

Why a plain aiokafka loop and not a Faust agent: Faust's per-record path (stream plumbing,
sensors, one changelog send per table write) cost about 80% of the engine's CPU, five times
the domain logic itself (docs/episode-engine.md, "Why the engine is not a Faust agent"). Here
every cost that can be per batch is: one fetch, one produce round trip with acks=all, one
RocksDB write batch and one offset commit per partition per batch.

The guarantees are the Faust table's, kept by one rule per batch:

1. apply every record to the pure domain (streams/engine/batch.py);
2. send alerts, audit records, dead letters and each changed child's new state (to the
   compacted changelog topic) and wait until Kafka acknowledged all of them;
3. write the new states to the local store together with the changelog offset;
4. commit the input offsets.

A crash before 2 completes replays the batch; a crash after it replays it against the state
already on the changelog, where every event id is seen and nothing fires twice (and an alert
re-sent in between keeps its id, which dispatch drops). The local store never runs ahead of
the changelog, so after a restart or a rebalance it catches up by reading the changelog from
its stored offset (streams/engine/restore.py).

The escalation timer lives here too: it scans only this worker's partitions (an in-memory
index of next-due times, rebuilt from the store's header lines after every assignment) and
sends "due" events onto the due topic, co-partitioned with the events; the loop applies them
like any input, and the state machine ignores a due event for a step already fired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from config.policy import Policy
from config.settings import Settings
from schemas.events import TimerDue
from schemas.records import DeadLetter
from schemas.redaction import keep_payload
from schemas.wire import dumps
from streams.engine.batch import BatchResult, process_batch
from streams.engine.group import owner_assignor
from streams.engine.restore import restore_partitions
from streams.engine.state_codec import decode_header, decode_open
from streams.engine.store import StateStore
from streams.kafka.clients import aiokafka_kwargs
from streams.kafka.partitioning import partition_for
from streams.kafka.sending import OutRecord, produce_batches_durably
from streams.kafka.topics import topic_specs
from streams.runtime.clock import Clock
from streams.runtime.due_index import DueEntry
from streams.runtime.timers import TimerState, rebuild
from telemetry.logging import get_logger, log_engine_effects
from telemetry.metrics import Metrics

log = get_logger("missing_alerts.engine")


@dataclass(frozen=True)
class EngineTopics:
    events: str
    due: str
    profiles: str
    alerts: str
    episode_events: str
    dead_letters: str
    state_changelog: str  # the episodes state, compacted, co-partitioned with events
    codes_changelog: str  # Faust GlobalTable "episode-codes" (episode code -> child)

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.events, self.due, self.profiles)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineTopics:
        specs = topic_specs(settings)
        return cls(
            events=specs["events"].name,
            due=specs["due"].name,
            profiles=specs["profiles"].name,
            alerts=specs["alerts"].name,
            episode_events=specs["episode_events"].name,
            dead_letters=specs["dead_letters"].name,
            state_changelog=specs["episodes_changelog"].name,
            codes_changelog=specs["codes_changelog"].name,
        )


def engine_group_id(settings: Settings) -> str:
    return f"{settings.app_id}-engine"


def batch_output(
    result: BatchResult, topics: EngineTopics, now: datetime
) -> tuple[list[OutRecord], dict[int, dict[bytes, bytes | None]]]:
    """What one batch sends, in order (each child's new state last, after every effect it
    implies), and the state entries per partition to store once acknowledged."""
    out: list[OutRecord] = []
    out += [OutRecord(topics.alerts, key, dumps(alert)) for key, alert in result.alerts]
    out += [OutRecord(topics.episode_events, key, dumps(rec)) for key, rec in result.records]
    for rej in result.rejected:
        rec = rej.event
        log.warning(
            "input dead-lettered",
            reason=rej.reason,
            fields=[e["field"] for e in rej.errors],
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
        )
        letter = DeadLetter.of(
            occurred_at=now,
            key=rec.key,
            source_topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            reason=rej.reason,
            errors=rej.errors,
            payload=rej.payload or keep_payload(rec.value),
        )
        out.append(OutRecord(topics.dead_letters, rec.key, dumps(letter)))
    out += [
        OutRecord(topics.codes_changelog, code.encode(), child) for _, code, child in result.opened
    ]
    states: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
    for key, write in result.writes.items():
        partition = write.event.partition
        value = write.entry()
        states[partition][key] = value
        out.append(OutRecord(topics.state_changelog, key, value, partition=partition))
    return out, dict(states)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.engine.partitions_revoked()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.engine.partitions_assigned(assigned)


class Engine:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        clock: Clock,
        metrics: Metrics,
        store: StateStore,
        *,
        url: str,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings, self.policy, self.clock, self.metrics = settings, policy, clock, metrics
        self.store = store
        self.url = url
        self.topics = EngineTopics.from_settings(settings)
        self.partition_counts = {
            spec.name: spec.partitions for spec in topic_specs(settings).values()
        }
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
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        kwargs = aiokafka_kwargs(s)
        self.producer = AIOKafkaProducer(
            **kwargs,
            acks="all",
            enable_idempotence=True,
            linger_ms=int(s.producer_linger_s * 1000),
            max_batch_size=s.producer_max_batch_bytes,
        )
        session_ms = int(s.broker_session_timeout_s * 1000)

        def set_owners(owners: dict[int, str]) -> None:
            self.owners = owners

        self.consumer = AIOKafkaConsumer(
            **kwargs,
            group_id=engine_group_id(s),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
            max_poll_records=s.engine_batch_max,
            partition_assignment_strategy=(
                owner_assignor(self.url, self.topics.events, set_owners),
            ),
        )
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(topics=list(self.topics.inputs), listener=_Rebalance(self))
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
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group: its partitions move on at once
        if self.producer is not None:
            await self.producer.stop()
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
        # Waits for the batch in progress: it finishes, is stored and committed, before the
        # group may hand its partitions to another worker.
        async with self._lock:
            self.ready.clear()
            self.timer.valid = False
            self.owned = set()

    async def partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == self.topics.events}
        async with self._lock:
            restored = await restore_partitions(
                aiokafka_kwargs(self.settings), self.store, self.topics.state_changelog, partitions
            )
            self.owned = partitions
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
        assert self.consumer is not None
        while not self._stopping:
            batch = await self.consumer.getmany(
                timeout_ms=200, max_records=self.settings.engine_batch_max
            )
            if not batch:
                continue
            async with self._lock:
                # Records fetched just before a rebalance took their partition are left to the
                # new owner (it reads from the last commit).
                records = [
                    rec for tp, recs in batch.items() if tp.partition in self.owned for rec in recs
                ]
                if records:
                    await self._process(records)

    async def _process(self, records: list[Any]) -> None:
        assert self.consumer is not None and self.producer is not None
        partition_of = {rec.key: rec.partition for rec in records}
        store = self.store

        def read(key: bytes) -> bytes | None:
            return store.get(partition_of[key], key)

        result = process_batch(
            records,
            read=read,
            policy=self.policy,
            now=self.clock.now,
            skew_tolerance=self.settings.clock_skew_tolerance,
        )
        out, states = batch_output(result, self.topics, self.clock.now())
        last = await produce_batches_durably(self.producer, out, self.partition_counts)
        changelog = self.topics.state_changelog
        for partition, entries in states.items():
            store.write(partition, entries, last[(changelog, partition)])
        for key, write in result.writes.items():
            self.timer.index.set(key, write.due_at, write.due_code)
        offsets: dict[TopicPartition, int] = {}
        for rec in records:
            offsets[TopicPartition(rec.topic, rec.partition)] = rec.offset + 1
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance in between: the next owner replays, harmlessly
            log.warning("engine commit failed", error=type(exc).__name__)
        self.metrics.observe_engine_batch(result)
        log_engine_effects(log, result.alerts, result.records)

    # -- timer -------------------------------------------------------------------------------

    async def _tick(self) -> None:
        interval = self.settings.timer_interval_s
        while not self._stopping:
            await asyncio.sleep(interval)
            if not self.ready.is_set() or not self.timer.valid:
                continue
            now = self.clock.now()
            due = self.timer.index.pop_due(now, limit=self.settings.timer_batch)
            if due:
                await self._emit_due(due, now)
            self.metrics.timer_tick(self.timer.name, len(self.timer.index), len(due))

    async def _emit_due(self, due: list[DueEntry], now: datetime) -> None:
        """Not waited on durably: an entry whose due event is lost stays in the index with a
        retry time (DueIndex.pop_due) and is sent again."""
        assert self.producer is not None
        n = self.settings.topic_partitions
        futures = []
        for entry in due:
            event = TimerDue(
                occurred_at=now,
                child_ref=entry.key.decode(),
                episode_code=entry.tag,
                due_at=entry.due_at,
            )
            futures.append(
                await self.producer.send(
                    self.topics.due,
                    dumps(event),
                    key=entry.key,
                    partition=partition_for(entry.key, n),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = sum(1 for r in results if isinstance(r, BaseException))
        if failed:
            log.warning("due events not sent; retried later", failed=failed)

    # -- for the internal state endpoint (streams/engine/process.py) --------------------------

    def partition_of(self, child: bytes) -> int:
        return partition_for(child, self.settings.topic_partitions)
