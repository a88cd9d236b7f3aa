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

from streams.engine.ports import InRecord, Rebalance
from streams.engine.store import StateStore


@dataclass(frozen=True)
class LocalRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


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

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> int:
        log = self.logs.setdefault((topic, partition), [])
        log.append(LocalRecord(topic, partition, len(log), key, value))
        return len(log) - 1

    def produce(self, topic: str, key: bytes, value: bytes) -> int:
        """Produce like a keyed client would (default partitioner); the offset."""
        from streams.kafka.partitioning import partition_for

        return self.append(topic, partition_for(key, self.partitions[topic]), key, value)

    def read(self, topic: str) -> list[LocalRecord]:
        return [r for (t, _), log in sorted(self.logs.items()) if t == topic for r in log]

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
            if records:
                entries = {r.key: r.value for r in records if r.key is not None}
                store.write(partition, entries, records[-1].offset)
                applied += len(records)
        return applied

    return restore
