"""Read a whole topic, start to current end, for batch jobs such as the SSDA903 export."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.settings import Settings
from streams.kafka.clients import aiokafka_kwargs


async def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, JSON value) of every record present when the call starts, per-partition order."""
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for d in described if d["topic"] == topic for p in d["partitions"]]
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        return []
    # read_committed: the engine writes its records in transactions; an aborted one is no
    # record at all (a crash or a fenced zombie left it).
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset < ends[tp] and rec.value is not None:
                        out.append((rec.key, json.loads(rec.value)))
            # By position, not by the last record's offset: transaction markers take offsets
            # of their own, so the last record of a partition is often not at end - 1.
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()
