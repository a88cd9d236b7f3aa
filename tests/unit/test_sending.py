"""produce_durably (streams/kafka/sending.py): retry failed sends until every record is
acknowledged, return the acknowledgements in input order, and hand records off in order on
every attempt."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

import streams.kafka.sending as sending
from streams.kafka.sending import OutRecord, produce_durably


@dataclass(frozen=True)
class Meta:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class FlakyProducer:
    """Fails the first ``failures[value]`` attempts at each named record, then acknowledges it.

    ``mode`` picks how a failure shows: a future that fails (a broker error after hand-off) or
    send itself raising (e.g. the producer's buffer is full). Acknowledgements complete in the
    reverse of hand-off order, so input order in the result cannot come from timing."""

    def __init__(self, failures: dict[bytes, int], mode: str = "future") -> None:
        self.failures = dict(failures)
        self.mode = mode
        self.handed_off: list[list[bytes | None]] = [[]]
        self.calls: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._offsets: Counter[tuple[str, int]] = Counter()

    def next_attempt(self) -> None:
        self.handed_off.append([])

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Meta]:
        self.calls.append((topic, key, value, partition))
        self.handed_off[-1].append(value)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Meta] = loop.create_future()
        remaining = self.failures.get(value or b"", 0)
        if remaining:
            self.failures[value or b""] = remaining - 1
            error = ConnectionError(f"broker gone for {value!r}")
            if self.mode == "raise":
                raise error
            loop.call_soon(future.set_exception, error)
            return future
        part = partition if partition is not None else 0
        offset = self._offsets[(topic, part)]
        self._offsets[(topic, part)] += 1
        meta = Meta(topic, part, offset, value)
        delay = 0.01 / (1 + len(self.handed_off[-1]))  # later hand-offs are acknowledged first
        loop.call_later(delay, future.set_result, meta)
        return future


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch, producer_box: list[FlakyProducer]) -> list[float]:
    """Record the backoff delays instead of sleeping; each sleep starts a new attempt."""
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        for producer in producer_box:
            producer.next_attempt()

    # Only streams.kafka.sending sees the fake: the event loop keeps the real asyncio.
    patched = SimpleNamespace(**{**vars(asyncio), "sleep": fake_sleep})
    monkeypatch.setattr(sending, "asyncio", patched)
    return delays


@pytest.fixture
def producer_box() -> list[FlakyProducer]:
    return []


def records(*values: bytes) -> list[OutRecord]:
    return [
        OutRecord("topic", b"key-" + v, v, partition=i % 2 if i else None)
        for i, v in enumerate(values)
    ]


async def test_all_acknowledged_first_time_returns_metadata_in_order(
    producer_box: list[FlakyProducer], sleeps: list[float]
) -> None:
    producer = FlakyProducer({})
    producer_box.append(producer)
    recs = records(b"r0", b"r1", b"r2", b"r3")
    metas = await produce_durably(producer, recs, max_backoff_s=0.01)
    assert [m.value for m in metas] == [b"r0", b"r1", b"r2", b"r3"]
    assert [(m.partition, m.offset) for m in metas] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert sleeps == []
    assert producer.calls[1] == ("topic", b"key-r1", b"r1", 1)
    assert producer.calls[0] == ("topic", b"key-r0", b"r0", None)  # partition left to Kafka


@pytest.mark.parametrize("mode", ["future", "raise"])
async def test_only_failed_records_are_retried_in_hand_off_order(
    mode: str, producer_box: list[FlakyProducer], sleeps: list[float]
) -> None:
    producer = FlakyProducer({b"r1": 1, b"r3": 1, b"r4": 1}, mode=mode)
    producer_box.append(producer)
    recs = records(b"r0", b"r1", b"r2", b"r3", b"r4", b"r5")

    metas = await produce_durably(producer, recs, max_backoff_s=0.01)

    assert [m.value for m in metas] == [r.value for r in recs]
    assert producer.handed_off == [
        [b"r0", b"r1", b"r2", b"r3", b"r4", b"r5"],
        [b"r1", b"r3", b"r4"],
    ]
    sent = Counter(value for _, _, value, _ in producer.calls)
    assert sent == {b"r0": 1, b"r1": 2, b"r2": 1, b"r3": 2, b"r4": 2, b"r5": 1}
    assert sleeps == [0.01]
    # Retried records keep their own partition and key.
    assert producer.calls[6:] == [
        ("topic", b"key-r1", b"r1", 1),
        ("topic", b"key-r3", b"r3", 1),
        ("topic", b"key-r4", b"r4", 0),
    ]


async def test_repeated_failures_back_off_up_to_the_cap(
    producer_box: list[FlakyProducer], sleeps: list[float]
) -> None:
    producer = FlakyProducer({b"slow": 3, b"flaky": 1})
    producer_box.append(producer)
    recs = records(b"ok", b"slow", b"flaky")

    metas = await produce_durably(producer, recs, max_backoff_s=0.3)

    assert [m.value for m in metas] == [b"ok", b"slow", b"flaky"]
    assert producer.handed_off == [
        [b"ok", b"slow", b"flaky"],
        [b"slow", b"flaky"],
        [b"slow"],
        [b"slow"],
    ]
    assert sleeps == pytest.approx([0.2, 0.3, 0.3])


async def test_nothing_to_send_returns_nothing(
    producer_box: list[FlakyProducer], sleeps: list[float]
) -> None:
    producer = FlakyProducer({})
    assert await produce_durably(producer, [], max_backoff_s=0.01) == []
    assert producer.calls == [] and sleeps == []


async def test_real_sleep_with_a_tiny_backoff() -> None:
    """Without the sleep patched, a retry still completes (the cap bounds the wait)."""
    producer = FlakyProducer({b"b": 2})
    metas = await produce_durably(producer, records(b"a", b"b"), max_backoff_s=0.001)
    assert [m.value for m in metas] == [b"a", b"b"]
    assert [v for _, _, v, _ in producer.calls] == [b"a", b"b", b"b", b"b"]
