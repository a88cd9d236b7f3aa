"""Send a set of records and do not return until Kafka has acknowledged every one.

The engine writes state only after its effects are durable, so a send that fails (broker down,
leader moving) is retried here with backoff rather than raised: raising inside a batch would
still move the batch on and lose the effects. Re-sends may duplicate a record; every record
carries a deterministic id that consumers de-duplicate on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from streams.kafka.partitioning import partition_for
from telemetry.logging import get_logger

log = get_logger("missing_alerts.sending")

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record for a plain aiokafka producer: already serialised, partition optional."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    # The engine's input partition the record derives from: its transaction, its offsets.
    source: int | None = None


async def _until_acked(
    items: Sequence[Item],
    hand_off: Callable[[Item], Awaitable[Any]],
    *,
    max_backoff_s: float,
) -> list[Any]:
    """Each item's acknowledgement (e.g. RecordMetadata), in ``items`` order."""
    acked: dict[int, Any] = {}
    pending = list(enumerate(items))
    attempt = 0
    while pending:
        # Sequential hand-off keeps per-partition order (an episode's "opened" before "closed");
        # only the waiting for acknowledgements is concurrent.
        futures: list[Any] = []
        for _, item in pending:
            try:
                futures.append(await hand_off(item))
            except Exception as exc:
                failed_now: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed_now.set_exception(exc)
                futures.append(failed_now)
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = []
        for (index, item), res in zip(pending, results, strict=True):
            if isinstance(res, BaseException):
                failed.append((index, item))
            else:
                acked[index] = res
        if not failed:
            return [acked[i] for i in range(len(items))]
        attempt += 1
        delay = min(max_backoff_s, 0.1 * 2**attempt)
        first = next(r for r in results if isinstance(r, BaseException))
        log.warning(
            "kafka send failed, retrying",
            failed=len(failed),
            error=type(first).__name__,
            retry_in_s=delay,
        )
        await asyncio.sleep(delay)
        pending = failed
    return [acked[i] for i in range(len(items))]


async def send_durably(
    items: Sequence[tuple[Any, bytes | None, Any]], *, max_backoff_s: float = 5.0
) -> None:
    """``items``: (faust topic, key, value). Returns once all are acknowledged."""

    async def hand_off(item: tuple[Any, bytes | None, Any]) -> Any:
        topic, key, value = item
        return await topic.send(key=key, value=value)

    await _until_acked(items, hand_off, max_backoff_s=max_backoff_s)


def partitioned(
    records: Sequence[OutRecord], partition_counts: Mapping[str, int]
) -> dict[tuple[str, int], list[OutRecord]]:
    """Records grouped by (topic, partition), in order; a record without a partition goes where
    the default (murmur2) partitioner would put it, like every other keyed producer here."""
    groups: dict[tuple[str, int], list[OutRecord]] = {}
    for rec in records:
        partition = rec.partition
        if partition is None:
            count = partition_counts[rec.topic]
            partition = 0 if rec.key is None else partition_for(rec.key, count)
        groups.setdefault((rec.topic, partition), []).append(rec)
    return groups


async def produce_batches_durably(
    producer: Any,
    records: Sequence[OutRecord],
    partition_counts: Mapping[str, int],
    *,
    max_backoff_s: float = 5.0,
) -> dict[tuple[str, int], int]:
    """The guarantee of ``send_durably`` for a plain aiokafka producer, handing it one record
    batch per partition (``send_batch``) instead of one call and one future per record: the
    engine sends a changelog record per child per batch, and per-record hand-off was a fifth of
    its CPU.

    Returns the offset of the last record written to each (topic, partition)."""
    groups = partitioned(records, partition_counts)

    async def hand_off(item: tuple[tuple[str, int], list[OutRecord]]) -> Any:
        (topic, partition), recs = item
        return _last_offset(await send_batches(producer, topic, partition, recs))

    acked = await _until_acked(list(groups.items()), hand_off, max_backoff_s=max_backoff_s)
    return dict(zip(groups.keys(), acked, strict=True))


async def send_batches(
    producer: Any, topic: str, partition: int, records: Sequence[OutRecord]
) -> list[tuple[asyncio.Future[Any], int]]:
    """Hand ``records`` (all for one partition) to the producer as few record batches as fit;
    each batch's delivery future and its record count."""
    futures = []
    batch, count = producer.create_batch(), 0
    for rec in records:
        if batch.append(key=rec.key, value=rec.value, timestamp=None) is None:
            futures.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=rec.key, value=rec.value, timestamp=None) is None:
                raise ValueError(f"record too large for one batch on {topic}")
        count += 1
    futures.append((await producer.send_batch(batch, topic, partition=partition), count))
    return futures


def _last_offset(futures: list[tuple[asyncio.Future[Any], int]]) -> asyncio.Future[int]:
    """One future for a partition's batches: the offset of its last record once all landed."""

    async def wait() -> int:
        last = -1
        for future, count in futures:
            meta = await future
            last = meta.offset + count - 1
        return last

    return asyncio.ensure_future(wait())
