"""A plain aiokafka producer for tools (CLI, tests, benchmark) that speak our wire format."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from config.settings import Settings
from schemas.wire import dumps
from streams.kafka.clients import aiokafka_kwargs


async def produce(settings: Settings, topic: str, events: Iterable[BaseModel]) -> None:
    """Send events keyed by child_ref and wait until the broker acknowledged all of them."""
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            child_ref: str = getattr(event, "child_ref")  # noqa: B009
            await producer.send_and_wait(topic, dumps(event), key=child_ref.encode())
    finally:
        await producer.stop()
