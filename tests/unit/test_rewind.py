"""The worker's rewind of stream partitions that have no committed offset
(streams/worker/rewind.py): without it, records Faust dropped during a rebalance are lost on a
partition whose group never committed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.worker.rewind import partitions_to_rewind, rewind_uncommitted

ALERTS0, ALERTS1 = TopicPartition("p.alerts", 0), TopicPartition("p.alerts", 1)
CHANGELOG = TopicPartition("p-deliveries-changelog", 0)


def test_only_stream_partitions_without_an_offset_are_rewound() -> None:
    committed = {ALERTS0: None, ALERTS1: 7, CHANGELOG: None}
    assert partitions_to_rewind(committed, {"p-deliveries-changelog"}) == {ALERTS0}


def test_an_offset_of_zero_counts_as_none() -> None:
    # aiokafka does not seek to 0 either; rewinding it changes nothing and keeps one rule.
    assert partitions_to_rewind({ALERTS0: 0}, set()) == {ALERTS0}


def test_everything_committed_rewinds_nothing() -> None:
    assert partitions_to_rewind({ALERTS0: 3, ALERTS1: 1}, set()) == set()


class FakeThread:
    def __init__(self, committed: dict[Any, int | None]) -> None:
        self.committed, self.rewound = committed, []

    async def seek_to_committed(self) -> dict[Any, int | None]:
        return self.committed

    async def seek_to_beginning(self, *tps: Any) -> None:
        self.rewound.extend(tps)


def test_the_patched_seek_rewinds_and_returns_what_faust_expects() -> None:
    rewind_uncommitted()
    rewind_uncommitted()  # idempotent: one patch, not two layers
    seek = faust_aiokafka.Consumer.seek_to_committed
    thread = FakeThread({ALERTS0: None, ALERTS1: 4, CHANGELOG: None})
    consumer = SimpleNamespace(
        _thread=thread,
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics={CHANGELOG.topic})),
    )
    got = asyncio.run(seek(consumer))
    assert got == thread.committed  # Faust sets its read offsets from this, unchanged
    assert thread.rewound == [ALERTS0]
