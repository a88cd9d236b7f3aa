"""What dispatch's stages read and write, as protocols: the Faust shell binds them to tables
and topics (streams/dispatch/agent.py), unit tests to memory (tests/support/dispatch_ports.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel

from alerts.delivery_log import Delivery
from alerts.fanout import Links
from alerts.retry import RetryPolicy


class DeliveryLog(Protocol):
    """The notification log (Alertmanager's nflog, per person): checked before every send."""

    def get(self, notification_id: str) -> Delivery | None: ...

    def put(self, delivery: Delivery) -> None: ...

    def delete(self, notification_id: str) -> None: ...

    async def flush(self) -> None:
        """Until what was put is durable (the table's changelog acknowledged)."""


class NotifiedLog(Protocol):
    """alerts/notified.py, per episode code."""

    def add(self, episode_code: str, person: str) -> None: ...

    def close(self, episode_code: str, at: datetime) -> None: ...

    def closed_at(self, episode_code: str) -> datetime | None: ...

    def forget(self, episode_code: str) -> None: ...


@dataclass(frozen=True)
class Source:
    """Where an input record came from, for its dead letter."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Item:
    """One input record and the ports bound to it (table writes land on its partition)."""

    source: Source
    log: DeliveryLog
    notified: NotifiedLog


# Durable produce: returns once Kafka acknowledged every record (alerts and dead letters).
Emit = Callable[[Sequence[BaseModel]], Awaitable[None]]


@dataclass(frozen=True)
class DispatchConfig:
    links: Links
    retry: RetryPolicy
    retention: timedelta
    concurrency: int  # provider calls in flight at once
    attempt_timeout: timedelta  # bound on one provider call, whatever the notifier does
