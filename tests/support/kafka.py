"""Real-broker helpers: produce like an integrator would, read topics back to count effects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


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
