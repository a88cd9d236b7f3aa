"""Wait until a consumer group has committed everything on its topics: the condition that
replaces "sleep and hope" when a test must show that nothing more happens (a second SMS, a
late step). The engine commits a record once its effects are durable, dispatch once its
messages are recorded, so "all committed" means "all done".

"Everything" means every data record: a topic written in transactions ends with a commit
marker that no consumer ever receives, so a committed offset may stop just before it.
Whatever lies between the committed offset and the end is read (read_committed); if it holds
no record, the partition is done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def wait_consumed(
    bootstrap: str, group: str, topics: Iterable[str], *, within: float = 45.0
) -> None:
    """Until ``group``'s committed offsets reach the end of every partition of ``topics``,
    twice in a row (a record produced in between would show as a new end)."""
    wanted = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(wanted)
        tps = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        deadline = time.monotonic() + within
        settled_once = False
        while True:
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group)
            behind = {}
            for tp, end in ends.items():
                done = committed[tp].offset if tp in committed else 0
                if end > done and await _records_between(consumer, tp, done, end):
                    behind[tp] = (done, end)
            if not behind:
                if settled_once:
                    return
                settled_once = True
            else:
                settled_once = False
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} still has records to process: {behind}")
            await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
        await admin.close()


async def _records_between(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
) -> bool:
    """Whether [start, end) of ``tp`` holds a data record (markers and aborted records do
    not count: the consumer reads read_committed)."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    deadline = time.monotonic() + 5
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=500)
        if any(r.offset < end for records in batch.values() for r in records):
            return True
        if time.monotonic() > deadline:
            return True  # still not readable (an open transaction): not done
    return False


def dispatch_topics(env: dict[str, str]) -> list[str]:
    prefix = env["MISSING_ALERTS_TOPIC_PREFIX"]
    return [f"{prefix}.alerts", f"{prefix}.receipts", f"{prefix}.dispatch-retries"]


def engine_topics(env: dict[str, str]) -> list[str]:
    prefix = env["MISSING_ALERTS_TOPIC_PREFIX"]
    return [f"{prefix}.events", f"{prefix}.due", f"{prefix}.profiles"]


async def dispatch_settled(env: dict[str, str], within: float = 45.0) -> None:
    await wait_consumed(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        env["MISSING_ALERTS_APP_ID"],
        dispatch_topics(env),
        within=within,
    )


async def engine_settled(env: dict[str, str], within: float = 45.0) -> None:
    await wait_consumed(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{env['MISSING_ALERTS_APP_ID']}-engine",
        engine_topics(env),
        within=within,
    )
