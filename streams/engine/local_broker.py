"""An in-memory broker for the engine's port, after arroyo's LocalBroker: the engine's batch
loop runs against it unchanged, and tests fault it at exact points (a produce that fails for
one partition, a commit that fails, a crash between phases) without a real broker.

It keeps what a Kafka cluster would: topics of numbered records per partition and committed
offsets for the engine's group. ``LocalProducer`` has the aiokafka producer methods the sink
uses (``create_batch``, ``send_batch``, ``send``), so the production sink (``KafkaSink``) runs on
it as it is; ``LocalSource`` plays the consumer, assignment included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import ProducerFenced

from streams.engine.ports import InRecord, Rebalance
from streams.engine.store import StateStore


@dataclass
class LocalRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    # Transactions: the writing transaction (None: written outside any), and what became of
    # it. A read_committed reader sees records outside transactions and committed ones only.
    txn: int | None = None
    state: str = "committed"  # "open", "committed", "aborted"


class Fault(Exception):
    """What an injected fault raises (a broker error as the client would see it)."""


@dataclass
class LocalBroker:
    partitions: Mapping[str, int]
    logs: dict[tuple[str, int], list[LocalRecord]] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    # Faults: (topic) -> produce attempts still to fail on it; commits still to fail.
    fail_produce: dict[str, int] = field(default_factory=dict)
    fail_commits: int = 0
    # Transactional ids -> the current producer epoch (a newer producer fences older ones).
    epochs: dict[str, int] = field(default_factory=dict)
    txn_owner: dict[int, str] = field(default_factory=dict)
    _txns: int = 0

    def fenced_txns(self, transactional_id: str) -> set[int]:
        return {t for t, owner in self.txn_owner.items() if owner == transactional_id}

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        txn: int | None = None,
    ) -> int:
        log = self.logs.setdefault((topic, partition), [])
        state = "open" if txn is not None else "committed"
        log.append(LocalRecord(topic, partition, len(log), key, value, txn, state))
        return len(log) - 1

    def new_txn(self) -> int:
        self._txns += 1
        return self._txns

    def end_txn(self, txn: int, state: str) -> None:
        for log in self.logs.values():
            for rec in log:
                if rec.txn == txn and rec.state == "open":
                    rec.state = state

    def produce(self, topic: str, key: bytes, value: bytes) -> int:
        """Produce like a keyed client would (default partitioner); the offset."""
        from streams.kafka.partitioning import partition_for

        return self.append(topic, partition_for(key, self.partitions[topic]), key, value)

    def read(self, topic: str, *, committed: bool = True) -> list[LocalRecord]:
        """Every record of ``topic``; read_committed (the default) skips open and aborted ones."""
        return [
            r
            for (t, _), log in sorted(self.logs.items())
            if t == topic
            for r in log
            if not committed or r.state == "committed"
        ]

    def end(self, topic: str, partition: int) -> int:
        return len(self.logs.get((topic, partition), []))

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise Fault("commit failed")
        self.committed.update(offsets)


class _Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _LocalBatch:
    def __init__(self) -> None:
        self.items: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object:
        self.items.append((key, value))
        return object()


class LocalProducer:
    """The aiokafka producer methods the engine's sink calls, writing to a LocalBroker."""

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.attempts: list[tuple[str, int]] = []

    def create_batch(self) -> _LocalBatch:
        return _LocalBatch()

    def _fails(self, topic: str) -> bool:
        left = self.broker.fail_produce.get(topic, 0)
        if left > 0:
            self.broker.fail_produce[topic] = left - 1
            return True
        return False

    async def send_batch(self, batch: _LocalBatch, topic: str, *, partition: int) -> Any:
        self.attempts.append((topic, partition))
        future: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        if self._fails(topic):
            future.set_exception(Fault(f"produce to {topic} failed"))
            return future
        first = self.broker.end(topic, partition)
        for key, value in batch.items:
            self.broker.append(topic, partition, key, value)
        future.set_result(_Meta(first))
        return future

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None, partition: int | None
    ) -> Any:
        future: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        if self._fails(topic):
            future.set_exception(Fault(f"produce to {topic} failed"))
        else:
            part = partition if partition is not None else 0
            future.set_result(_Meta(self.broker.append(topic, part, key, value)))
        return future

    async def stop(self) -> None:
        pass


class LocalSource:
    """The engine's consumer on a LocalBroker: reads its assigned partitions of ``inputs`` from
    the committed offsets on, like a consumer joining the group after a restart."""

    def __init__(self, broker: LocalBroker, inputs: Sequence[str], assigned: set[int]) -> None:
        self.broker, self.inputs, self.assigned = broker, list(inputs), set(assigned)
        self.positions: dict[tuple[str, int], int] = {}
        self.rebalance: Rebalance | None = None
        self.on_owners: Callable[[dict[int, str]], None] | None = None

    async def start(
        self, rebalance: Rebalance, on_owners: Callable[[dict[int, str]], None]
    ) -> None:
        self.rebalance, self.on_owners = rebalance, on_owners
        await self.assign(self.assigned)

    async def assign(self, partitions: set[int]) -> None:
        assert self.rebalance is not None
        self.assigned = set(partitions)
        self.positions = {
            (t, p): self.broker.committed.get((t, p), 0) for t in self.inputs for p in partitions
        }
        await self.rebalance.partitions_assigned(set(partitions))

    async def revoke(self) -> None:
        """A rebalance taking every partition away (waits for the batch in progress)."""
        assert self.rebalance is not None
        await self.rebalance.partitions_revoked()
        self.assigned, self.positions = set(), {}

    async def poll(self, timeout_ms: int, max_records: int) -> Mapping[int, Sequence[InRecord]]:
        out: dict[int, list[InRecord]] = {}
        taken = 0
        for (topic, partition), position in sorted(self.positions.items()):
            log = self.broker.logs.get((topic, partition), [])
            records = log[position : position + max(0, max_records - taken)]
            if records:
                out.setdefault(partition, []).extend(records)
                self.positions[(topic, partition)] = position + len(records)
                taken += len(records)
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        return out

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.broker.commit(offsets)

    async def lag(self) -> dict[tuple[str, int], int]:
        return {tp: self.broker.end(*tp) - pos for tp, pos in self.positions.items()}

    async def stop(self) -> None:
        self.assigned, self.positions = set(), {}


class LocalTxnProducer(LocalProducer):
    """A transactional producer on a LocalBroker: records of a transaction are invisible to
    read_committed readers until it commits; the input offsets sent with it are committed with
    it; a newer producer with the same id fences this one and aborts what it left open."""

    def __init__(self, broker: LocalBroker, transactional_id: str | None) -> None:
        super().__init__(broker)
        self.transactional_id = transactional_id
        self.epoch = 0
        self.txn: int | None = None
        self.offsets: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        tid = self.transactional_id
        if tid is None:
            return
        self.epoch = self.broker.epochs.get(tid, 0) + 1
        self.broker.epochs[tid] = self.epoch
        for log in self.broker.logs.values():  # the previous epoch's open transaction
            for rec in log:
                if rec.state == "open" and rec.txn in self.broker.fenced_txns(tid):
                    rec.state = "aborted"

    def _check(self) -> None:
        if self.broker.epochs.get(str(self.transactional_id)) != self.epoch:
            raise ProducerFenced(f"fenced: {self.transactional_id}")

    async def begin_transaction(self) -> None:
        self._check()
        self.txn = self.broker.new_txn()
        self.broker.txn_owner[self.txn] = str(self.transactional_id)
        self.offsets = {}

    async def send_batch(self, batch: _LocalBatch, topic: str, *, partition: int) -> Any:
        if self.transactional_id is None:
            return await super().send_batch(batch, topic, partition=partition)
        self._check()
        self.attempts.append((topic, partition))
        future: asyncio.Future[_Meta] = asyncio.get_running_loop().create_future()
        if self._fails(topic):
            future.set_exception(Fault(f"produce to {topic} failed"))
            return future
        first = self.broker.end(topic, partition)
        for key, value in batch.items:
            self.broker.append(topic, partition, key, value, txn=self.txn)
        future.set_result(_Meta(first))
        return future

    async def send_offsets_to_transaction(self, offsets: Mapping[Any, int], group_id: str) -> None:
        self._check()
        self.offsets = {(tp.topic, tp.partition): o for tp, o in offsets.items()}

    async def commit_transaction(self) -> None:
        self._check()
        assert self.txn is not None
        self.broker.commit(self.offsets)
        self.broker.end_txn(self.txn, "committed")
        self.txn = None

    async def abort_transaction(self) -> None:
        if self.txn is not None:
            self.broker.end_txn(self.txn, "aborted")
            self.txn = None


def local_restore(broker: LocalBroker) -> Callable[[StateStore, str, set[int]], Any]:
    """streams/engine/restore.py's job on a LocalBroker: apply the changelog from the offset the
    store recorded."""

    async def restore(store: StateStore, topic: str, partitions: set[int]) -> int:
        applied = 0
        for partition in sorted(partitions):
            store.open(partition)
            stored = store.changelog_offset(partition)
            start = 0 if stored is None else stored + 1
            records = broker.logs.get((topic, partition), [])[start:]
            seen = [r for r in records if r.state == "committed"]  # read_committed
            if seen:
                entries = {r.key: r.value for r in seen if r.key is not None}
                store.write(partition, entries, seen[-1].offset)
                applied += len(seen)
        return applied

    return restore
