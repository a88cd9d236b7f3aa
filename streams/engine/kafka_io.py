"""The engine's port (streams/engine/ports.py) on a real broker, with aiokafka: one consumer in
the engine's group over the events, due and profiles topics, and one idempotent producer
(acks=all)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from config.settings import Settings
from streams.engine.group import engine_group_id, owner_assignor
from streams.engine.ports import Batch, InRecord, Rebalance, Written
from streams.engine.restore import restore_partitions
from streams.engine.store import StateStore
from streams.kafka.clients import aiokafka_kwargs
from streams.kafka.lag import read_lag
from streams.kafka.sending import OutRecord, produce_batches_durably
from telemetry.logging import get_logger

log = get_logger("missing_alerts.engine")


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, rebalance: Rebalance, events_topic: str) -> None:
        self.rebalance, self.events_topic = rebalance, events_topic

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.rebalance.partitions_revoked()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.rebalance.partitions_assigned(
            {tp.partition for tp in assigned if tp.topic == self.events_topic}
        )


class KafkaSource:
    def __init__(self, settings: Settings, inputs: Sequence[str], url: str) -> None:
        self.settings, self.inputs, self.url = settings, list(inputs), url
        self.consumer: AIOKafkaConsumer | None = None

    async def start(
        self, rebalance: Rebalance, on_owners: Callable[[dict[int, str]], None]
    ) -> None:
        s = self.settings
        session_ms = int(s.broker_session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(s),
            group_id=engine_group_id(s),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
            max_poll_records=s.engine_batch_max,
            partition_assignment_strategy=(owner_assignor(self.url, self.inputs[0], on_owners),),
        )
        await self.consumer.start()
        self.consumer.subscribe(topics=self.inputs, listener=_Listener(rebalance, self.inputs[0]))

    async def poll(self, timeout_ms: int, max_records: int) -> Mapping[int, Sequence[InRecord]]:
        assert self.consumer is not None
        fetched = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        by_partition: dict[int, list[InRecord]] = {}
        for tp, records in fetched.items():
            by_partition.setdefault(tp.partition, []).extend(records)
        return by_partition

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        assert self.consumer is not None
        await self.consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})

    async def lag(self) -> dict[tuple[str, int], int]:
        if self.consumer is None:
            return {}
        return await read_lag(self.consumer, self.inputs)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()


class Committer(Protocol):
    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None: ...


class KafkaSink:
    """At least once: all batches' records in one produce round trip (one record batch per
    partition), then the input offsets committed. A crash between the two replays the batch
    against the changelog, which already holds its states (docs/engine-runtime.md).

    ``producer`` is an aiokafka producer made at start from the settings unless one is given
    (streams/engine/local_broker.py gives an in-memory one with the same methods)."""

    def __init__(
        self,
        settings: Settings,
        source: Committer,
        partition_counts: Mapping[str, int],
        *,
        producer: Any = None,
    ) -> None:
        self.settings, self.source, self.partition_counts = settings, source, partition_counts
        self.producer: Any = producer

    async def start(self) -> None:
        if self.producer is not None:
            return
        s = self.settings
        self.producer = AIOKafkaProducer(
            **aiokafka_kwargs(s),
            acks="all",
            enable_idempotence=True,
            linger_ms=int(s.producer_linger_s * 1000),
            max_batch_size=s.producer_max_batch_bytes,
        )
        await self.producer.start()

    async def deliver(self, batches: Sequence[Batch]) -> Written:
        assert self.producer is not None
        records = [rec for batch in batches for rec in batch.records]
        written = await produce_batches_durably(self.producer, records, self.partition_counts)
        offsets = {tp: o for batch in batches for tp, o in batch.offsets.items()}
        try:
            await self.source.commit(offsets)
        except Exception as exc:  # a rebalance in between: the next owner replays, harmlessly
            log.warning("engine commit failed", error=type(exc).__name__)
        return written

    async def emit(self, records: Sequence[OutRecord]) -> int:
        assert self.producer is not None
        futures: list[Any] = []
        for rec in records:
            futures.append(
                await self.producer.send(rec.topic, rec.value, key=rec.key, partition=rec.partition)
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        return sum(1 for r in results if isinstance(r, BaseException))

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


def kafka_restore(settings: Settings) -> Callable[[StateStore, str, set[int]], Any]:
    kwargs = aiokafka_kwargs(settings)

    async def restore(store: StateStore, topic: str, partitions: set[int]) -> int:
        return await restore_partitions(kwargs, store, topic, partitions)

    return restore
