"""Real-broker helpers: produce like an integrator would, read topics back to count effects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def produce_raw(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, until: int, within: float = 60.0
) -> list[dict[str, Any]]:
    """Read JSON values from the start of ``topic``: ``until`` records or ``within`` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # what dispatch and the export see
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while len(out) < until and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(json.loads(r.value) for r in records)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return out


def wait_for_lines(path: Any, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Poll a JSON-lines file until it holds ``count`` lines (or the timeout)."""
    deadline = time.monotonic() + timeout
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= count:
                return lines
        time.sleep(0.2)
    return lines


async def keys_to_end(bootstrap: str, topic: str) -> set[str]:
    """Every key on ``topic`` up to its end offsets now (read_committed): for a table's
    changelog, what was durable at that instant."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for d in described for p in d["partitions"]]
    assert tps, f"no partitions for {topic}"
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        keys: set[str] = set()
        deadline = time.monotonic() + 30
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: could not read to its end offsets {ends}")
            batch = await consumer.getmany(timeout_ms=500)
            keys.update(r.key.decode() for rs in batch.values() for r in rs if r.key)
        return keys
    finally:
        await consumer.stop()
