"""The API's own Kafka producer.

aiokafka keeps one produce request in flight per broker connection, and the Faust producer
also carries dispatch's table changelogs: a carer's 202 would wait behind them. A producer of
its own gives API writes their own connection, so their latency is one acks=all round trip.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from mode import Service
from pydantic import BaseModel

from config.settings import Settings
from schemas.wire import dumps
from streams.kafka.clients import aiokafka_kwargs


class ApiProducer(Service):  # type: ignore[misc]
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self._producer = AIOKafkaProducer(
            **aiokafka_kwargs(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await self._producer.start()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, topic: Any, event: BaseModel, child_ref: str) -> Any:
        """``topic``: a Faust topic (its name is used). Returns the delivery future."""
        if self._producer is None:
            raise RuntimeError("the API producer has not started")
        name = topic if isinstance(topic, str) else topic.get_topic_name()
        return await self._producer.send(name, dumps(event), key=child_ref.encode())
