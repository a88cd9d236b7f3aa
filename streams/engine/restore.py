"""Bring the local state store up to the changelog topic for newly assigned partitions.

The store remembers the last changelog offset it applied, so a worker that restarts on the same
disk reads only what other workers (or its own last moments) wrote since; an empty disk reads
the compacted changelog from the start. Reads go up to the end offsets taken when the restore
begins: nobody else writes these partitions now (the group gave them to this worker).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.engine.store import StateStore
from telemetry.logging import get_logger

log = get_logger("missing_alerts.restore")


async def restore_partitions(
    client_kwargs: dict[str, Any],
    store: StateStore,
    topic: str,
    partitions: Iterable[int],
    *,
    max_records: int = 20_000,
) -> int:
    """Returns the number of changelog records applied."""
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    for partition in wanted:
        store.open(partition)
    tps = [TopicPartition(topic, p) for p in wanted]
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # The engine writes its changelog in transactions: an aborted one (a crash, a fenced
        # zombie) must not come back as state.
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    applied = 0
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        remaining: set[TopicPartition] = set()
        for tp in tps:
            stored = store.changelog_offset(tp.partition)
            start = 0 if stored is None else stored + 1
            if start < begins[tp]:
                # Retention removed records this copy never saw (compaction keeps every key's
                # latest value but moves the start past deleted ones): rebuild from scratch.
                log.warning("changelog start passed the local copy", partition=tp.partition)
                store.reset(tp.partition)
                start = begins[tp]
            if start < ends[tp]:
                consumer.seek(tp, start)
                remaining.add(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
            for tp, records in batch.items():
                records = [rec for rec in records if rec.offset < ends[tp]]
                if records:
                    entries = {rec.key: rec.value for rec in records if rec.key is not None}
                    store.write(tp.partition, entries, records[-1].offset)
                    applied += len(records)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return applied
