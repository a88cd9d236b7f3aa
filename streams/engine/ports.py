"""The engine's Kafka I/O as a small port, after arroyo's consumer/producer abstractions: the
batch loop (streams/engine/loop.py) talks only to these protocols, so it runs against the real
broker (streams/engine/kafka_io.py) and against an in-memory one (streams/engine/local_broker.py)
that unit tests fault at will: a revocation mid-batch, a produce that half fails, a failed
commit, a crash between phases.

One batch crosses the port three times: ``Source.poll`` hands records in; ``Sink.send`` takes
the batch's output records and the input offsets they consume; ``Sink.commit`` (after every
batch, or every commit interval) returns only once all sent is durable and the offsets are
committed. The engine writes its local store after the commit, so the store is never ahead of
the changelog topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.engine.store import StateStore
from streams.kafka.sending import OutRecord


class InRecord(Protocol):
    """The attributes of a consumed record the engine reads (an aiokafka ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True)
class Batch:
    """One input partition's share of a batch: what it sends and what it consumes."""

    partition: int
    records: Sequence[OutRecord]
    offsets: Mapping[tuple[str, int], int]  # (topic, partition) -> next offset to read


# (topic, partition) -> offset of the last record written there.
Written = dict[tuple[str, int], int]


class Rebalance(Protocol):
    """The engine's side of a rebalance: the source calls these."""

    async def partitions_revoked(self) -> None: ...

    async def partitions_assigned(self, partitions: set[int]) -> None: ...


class Source(Protocol):
    async def start(
        self, rebalance: Rebalance, on_owners: Callable[[dict[int, str]], None]
    ) -> None:
        """Join the group; ``on_owners`` gets the partition -> engine URL map of every
        assignment (streams/engine/group.py)."""

    async def poll(self, timeout_ms: int, max_records: int) -> Mapping[int, Sequence[InRecord]]:
        """Records fetched, by input partition (events, due and profiles share partitions)."""

    async def lag(self) -> dict[tuple[str, int], int]: ...

    async def stop(self) -> None:
        """Leave the group: the partitions move on at once."""


class Sink(Protocol):
    async def start(self) -> None: ...

    async def assigned(self, partitions: set[int]) -> None:
        """The engine now owns ``partitions`` (called before their changelog is read)."""

    async def revoked(self) -> None:
        """The engine owns no partition any more (called after the batch in progress)."""

    async def send(self, batches: Sequence[Batch]) -> None:
        """Hand every batch's records over (at least once: made durable now; exactly once:
        sent in each input partition's open transaction) with the offsets they consume."""

    async def commit(self) -> Written:
        """Make everything sent since the last commit durable and commit its offsets; what
        was written where. Retries until done: raising would move on without the effects."""

    async def emit(self, records: Sequence[OutRecord]) -> int:
        """Best effort (the timer's due events): the number of records that failed."""

    async def stop(self) -> None: ...


# Catch a store up from the changelog for newly assigned partitions; records applied.
Restore = Callable[[StateStore, str, set[int]], Awaitable[int]]
