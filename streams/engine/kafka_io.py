"""The engine's port (streams/engine/ports.py) on a real broker, with aiokafka: one consumer in
the engine's group over the events, due and profiles topics, and one idempotent producer
(acks=all)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from config.settings import Settings
from streams.engine.group import engine_group_id, owner_assignor
from streams.engine.ports import Batch, InRecord, Rebalance, Written
from streams.engine.restore import restore_partitions
from streams.engine.store import StateStore
from streams.kafka.clients import aiokafka_kwargs
from streams.kafka.lag import read_lag
from streams.kafka.sending import OutRecord, partitioned, produce_batches_durably, send_batches
from streams.runtime.failpoints import failpoint
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
            isolation_level="read_committed",
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
    """At least once: all batches' records made durable in one produce round trip (one record
    batch per partition) as they are sent, then, at the commit, the input offsets. A crash
    between the two replays the batch against the changelog, which already holds its states
    (docs/engine-runtime.md).

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
        self._written: Written = {}
        self._offsets: dict[tuple[str, int], int] = {}

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

    async def assigned(self, partitions: set[int]) -> None:
        pass

    async def revoked(self) -> None:
        pass

    async def send(self, batches: Sequence[Batch]) -> None:
        assert self.producer is not None
        records = [rec for batch in batches for rec in batch.records]
        written = await produce_batches_durably(self.producer, records, self.partition_counts)
        self._written.update(written)  # offsets only grow: the latest write wins
        for batch in batches:
            self._offsets.update(batch.offsets)

    async def commit(self) -> Written:
        failpoint("engine.after_produce_before_commit")
        written, self._written = self._written, {}
        offsets, self._offsets = self._offsets, {}
        if offsets:
            try:
                await self.source.commit(offsets)
            except Exception as exc:  # a rebalance in between: the next owner replays
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


class Fenced(Exception):
    """A newer engine holds this input partition's transactional id: this one is a zombie (it
    stalled past its session and its partition moved). It must stop; nothing it sent since
    its last commit is visible to a read_committed reader."""


_FENCING_ERRORS = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed)


def transactional_id(settings: Settings, partition: int) -> str:
    """One transactional producer per input partition (as Kafka Streams did before KIP-447):
    whoever owns partition p uses the same id, so the new owner's first transaction fences
    the old owner's producer and aborts whatever it left open."""
    return f"{engine_group_id(settings)}-p{partition}"


class _Broken(Exception):
    """An open transaction that failed before its commit: it is started again."""


@dataclass
class _Open:
    """One input partition's open transaction: what was sent in it (to send again if it
    fails), the delivery futures, the input offsets it will commit."""

    batches: list[Batch] = field(default_factory=list)
    futures: list[tuple[tuple[str, int], list[tuple[Any, int]]]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    broken: bool = False


class TransactionalSink:
    """Exactly once: each input partition's outputs, changelog records and input offsets since
    the last commit (one batch, or all batches of a commit interval) commit in one Kafka
    transaction of that partition's own producer; the partitions commit concurrently. A failed
    transaction is aborted (or its producer replaced) and sent again whole; nothing of it is
    ever visible to a read_committed reader."""

    def __init__(
        self,
        settings: Settings,
        partition_counts: Mapping[str, int],
        *,
        outside: frozenset[str] = frozenset(),
        producer_factory: Callable[[str | None], Any] | None = None,
    ) -> None:
        """``outside``: topics written before the transaction, durably but outside it: the
        episode-code and episode-view tables' changelogs, which Faust's table recovery reads up
        to the high watermark and so never finishes on a topic whose last offset is a
        transaction marker. What goes there is deterministic (a code derives from the opening
        event, a view from the state after the batch), so an entry of an aborted transaction
        is the entry its replay writes again."""
        self.settings, self.partition_counts, self.outside = settings, partition_counts, outside
        self.group_id = engine_group_id(settings)
        self._factory = producer_factory or self._aiokafka_producer
        self.producers: dict[int, Any] = {}
        self._open: dict[int, _Open] = {}
        self._written: Written = {}
        self.plain: Any = None  # due events and the ``outside`` topics: no transaction

    def _aiokafka_producer(self, transactional: str | None) -> Any:
        s = self.settings
        return AIOKafkaProducer(
            **aiokafka_kwargs(s),
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional,
            linger_ms=int(s.producer_linger_s * 1000),
            max_batch_size=s.producer_max_batch_bytes,
        )

    async def start(self) -> None:
        self.plain = self._factory(None)
        await self.plain.start()

    async def assigned(self, partitions: set[int]) -> None:
        """Start (and so fence the previous owner of) each newly owned partition's producer,
        before its changelog is read: after this no zombie can add to it."""
        for partition in sorted(partitions - set(self.producers)):
            self.producers[partition] = await self._new_producer(partition)
        for partition in sorted(set(self.producers) - partitions):
            await self._drop(partition)

    async def revoked(self) -> None:
        for partition in list(self.producers):
            await self._drop(partition)

    async def _new_producer(self, partition: int) -> Any:
        producer = self._factory(transactional_id(self.settings, partition))
        await producer.start()  # InitProducerId: bumps the epoch, aborts a dangling txn
        return producer

    async def _drop(self, partition: int) -> None:
        producer = self.producers.pop(partition, None)
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def send(self, batches: Sequence[Batch]) -> None:
        """Hand each partition's share to its open transaction (begun here if none is): the
        records go out at once, invisible to read_committed readers until the commit."""
        for batch in batches:
            outside = [rec for rec in batch.records if rec.topic in self.outside]
            if outside:
                self._written.update(
                    await produce_batches_durably(self.plain, outside, self.partition_counts)
                )
            txn = self._open.get(batch.partition)
            if txn is None:
                txn = self._open[batch.partition] = _Open()
                try:
                    await self._begin(batch.partition)
                except _FENCING_ERRORS as exc:
                    raise Fenced(f"input partition {batch.partition}") from exc
                except Exception:
                    txn.broken = True  # the commit starts it again from the beginning
            txn.batches.append(batch)
            if not txn.broken:
                try:
                    await self._hand_over(batch.partition, txn, batch)
                except _FENCING_ERRORS as exc:
                    raise Fenced(f"input partition {batch.partition}") from exc
                except Exception:
                    txn.broken = True

    async def commit(self) -> Written:
        open_now, self._open = self._open, {}
        written, self._written = self._written, {}
        for part in await asyncio.gather(
            *(self._commit_one(p, txn) for p, txn in open_now.items())
        ):
            written.update(part)
        return written

    async def _begin(self, partition: int) -> None:
        await self.producers[partition].begin_transaction()

    async def _hand_over(self, partition: int, txn: _Open, batch: Batch) -> None:
        producer = self.producers[partition]
        inside = [rec for rec in batch.records if rec.topic not in self.outside]
        for where, records in partitioned(inside, self.partition_counts).items():
            txn.futures.append((where, await send_batches(producer, where[0], where[1], records)))
        txn.offsets.update(batch.offsets)

    async def _commit_one(self, partition: int, txn: _Open) -> Written:
        attempt = 0
        while True:
            try:
                if txn.broken:
                    raise _Broken
                return await self._finish(partition, txn)
            except _FENCING_ERRORS as exc:
                raise Fenced(f"input partition {partition}") from exc
            except Exception as exc:
                attempt += 1
                delay = min(5.0, 0.1 * 2**attempt)
                log.warning(
                    "engine transaction failed, retrying",
                    partition=partition,
                    error=type(exc).__name__,
                    retry_in_s=delay,
                )
                await self._reset(partition)
                await asyncio.sleep(delay)
                txn = await self._resend(partition, txn)

    async def _finish(self, partition: int, txn: _Open) -> Written:
        written: Written = {}
        for where, futures in txn.futures:
            for future, count in futures:
                meta = await future
                written[where] = meta.offset + count - 1
        failpoint("engine.after_produce_before_commit")
        producer = self.producers[partition]
        offsets = {TopicPartition(t, p): o for (t, p), o in txn.offsets.items()}
        if offsets:
            await producer.send_offsets_to_transaction(offsets, self.group_id)
        await producer.commit_transaction()
        return written

    async def _resend(self, partition: int, txn: _Open) -> _Open:
        """The whole open transaction again, in a fresh one (a failure aborts all of it)."""
        fresh = _Open(batches=list(txn.batches))
        try:
            await self._begin(partition)
            for batch in fresh.batches:
                await self._hand_over(partition, fresh, batch)
        except _FENCING_ERRORS:
            raise
        except Exception:
            fresh.broken = True
        return fresh

    async def _reset(self, partition: int) -> None:
        """Abort the failed transaction; a producer in a state that cannot abort is replaced
        (a new one with the same id aborts it for us)."""
        producer = self.producers.get(partition)
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.abort_transaction(), 10)
            return
        except _FENCING_ERRORS:
            raise
        except Exception:
            pass
        await self._drop(partition)
        self.producers[partition] = await self._new_producer(partition)

    async def emit(self, records: Sequence[OutRecord]) -> int:
        futures = [
            await self.plain.send(r.topic, r.value, key=r.key, partition=r.partition)
            for r in records
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return sum(1 for r in results if isinstance(r, BaseException))

    async def stop(self) -> None:
        await self.revoked()
        if self.plain is not None:
            await self.plain.stop()
