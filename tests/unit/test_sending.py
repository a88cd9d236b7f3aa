"""Durable sends (streams/kafka/sending.py): retry what failed until every record is
acknowledged, never re-send what was acknowledged, keep each partition's order, back off up to
a cap. ``produce_batches_durably`` runs on the in-memory producer of
streams/engine/local_broker.py; ``send_durably`` (dispatch's Faust topics) on a flaky fake."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

import streams.kafka.sending as sending
from streams.engine.local_broker import LocalBroker, LocalProducer
from streams.kafka.partitioning import partition_for
from streams.kafka.sending import OutRecord, produce_batches_durably, send_durably

COUNTS = {"a": 2, "b": 2}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff delays instead of sleeping."""
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(
        sending, "asyncio", SimpleNamespace(**{**vars(asyncio), "sleep": fake_sleep})
    )
    return delays


def recs(topic: str, *values: bytes, partition: int | None = None) -> list[OutRecord]:
    return [OutRecord(topic, b"k-" + v, v, partition=partition) for v in values]


def values(broker: LocalBroker, topic: str, partition: int) -> list[bytes | None]:
    return [r.value for r in broker.logs.get((topic, partition), [])]


async def test_one_batch_per_partition_in_order_and_the_last_offsets(sleeps: list[float]) -> None:
    broker = LocalBroker(COUNTS)
    producer = LocalProducer(broker)
    out = recs("a", b"a0", b"a1", partition=1) + recs("b", b"b0") + recs("a", b"a2", partition=1)
    written = await produce_batches_durably(producer, out, COUNTS, max_backoff_s=0.01)
    b_partition = partition_for(b"k-b0", 2)
    assert values(broker, "a", 1) == [b"a0", b"a1", b"a2"]
    assert written == {("a", 1): 2, ("b", b_partition): 0}
    assert producer.attempts == [("a", 1), ("b", b_partition)] and sleeps == []


async def test_only_the_failed_partition_is_retried_and_nothing_is_written_twice(
    sleeps: list[float],
) -> None:
    broker = LocalBroker(COUNTS)
    broker.fail_produce["b"] = 3
    producer = LocalProducer(broker)
    out = recs("a", b"a0", partition=0) + recs("b", b"b0", b"b1", partition=1)
    written = await produce_batches_durably(producer, out, COUNTS, max_backoff_s=0.3)
    assert values(broker, "a", 0) == [b"a0"] and values(broker, "b", 1) == [b"b0", b"b1"]
    assert producer.attempts.count(("a", 0)) == 1 and producer.attempts.count(("b", 1)) == 4
    assert written == {("a", 0): 0, ("b", 1): 1}
    assert sleeps == pytest.approx([0.2, 0.3, 0.3])  # doubling from 0.2, capped


async def test_nothing_to_send_sends_nothing(sleeps: list[float]) -> None:
    producer = LocalProducer(LocalBroker(COUNTS))
    assert await produce_batches_durably(producer, [], COUNTS) == {}
    assert producer.attempts == []


class FlakyTopic:
    """A Faust topic whose ``send`` fails (raising, or with a failed future) for given values."""

    def __init__(self, failures: dict[bytes, int], *, raising: bool) -> None:
        self.failures, self.raising = dict(failures), raising
        self.sent: list[bytes] = []
        self.acked: list[bytes] = []

    async def send(self, *, key: bytes | None, value: Any) -> asyncio.Future[bytes]:
        self.sent.append(value)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.failures.get(value, 0):
            self.failures[value] -= 1
            if self.raising:
                raise ConnectionError("buffer full")
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.acked.append(value)
            future.set_result(value)
        return future


@pytest.mark.parametrize("raising", [True, False])
async def test_send_durably_retries_only_what_failed(raising: bool, sleeps: list[float]) -> None:
    topic = FlakyTopic({b"r1": 2}, raising=raising)
    await send_durably([(topic, b"k", v) for v in (b"r0", b"r1", b"r2")], max_backoff_s=0.01)
    assert topic.acked == [b"r0", b"r2", b"r1"]
    assert topic.sent == [b"r0", b"r1", b"r2", b"r1", b"r1"]
    assert len(sleeps) == 2
