"""In-memory ports for streams/dispatch/pipeline.py: the delivery log, the notified log, a
producer that records what was made durable, and scriptable notifiers (after arroyo's
LocalBroker: the same pipeline, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from alerts import notified as notified_codec
from alerts.delivery_log import Delivery
from alerts.notifiers.base import Outcome, SendResult
from schemas.alerts import Notification
from streams.dispatch.ports import Item, Source


@dataclass
class MemoryDeliveryLog:
    records: dict[str, Delivery] = field(default_factory=dict)
    fail_put_for: set[str] = field(default_factory=set)
    flushes: int = 0

    def get(self, notification_id: str) -> Delivery | None:
        return self.records.get(notification_id)

    def put(self, delivery: Delivery) -> None:
        nid = delivery.notification.notification_id
        if nid in self.fail_put_for:
            raise OSError("store unavailable for this key")
        self.records[nid] = delivery

    def delete(self, notification_id: str) -> None:
        self.records.pop(notification_id, None)

    async def flush(self) -> None:
        self.flushes += 1


@dataclass
class MemoryNotifiedLog:
    entries: dict[str, notified_codec.Notified] = field(default_factory=dict)

    def add(self, episode_code: str, person: str) -> None:
        entry = self.entries.get(episode_code, notified_codec.Notified()).with_person(person)
        if entry is not None:
            self.entries[episode_code] = entry

    def close(self, episode_code: str, at: datetime) -> None:
        entry = self.entries.get(episode_code, notified_codec.Notified()).with_close(at)
        if entry is not None:
            self.entries[episode_code] = entry

    def closed_at(self, episode_code: str) -> datetime | None:
        entry = self.entries.get(episode_code)
        return entry.closed_at if entry else None

    def forget(self, episode_code: str) -> None:
        self.entries.pop(episode_code, None)


@dataclass
class Emitted:
    records: list[BaseModel] = field(default_factory=list)

    async def __call__(self, records: Sequence[BaseModel]) -> None:
        await asyncio.sleep(0)
        self.records.extend(records)

    def of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]


class ScriptedNotifier:
    """Answers per recipient: a SendResult, an exception to raise, or "hang" (until released)."""

    def __init__(self, name: str = "scripted") -> None:
        self.name = name
        self.script: dict[str, Any] = {}
        self.sent: list[Notification] = []
        self.release = asyncio.Event()

    async def send(self, notification: Notification) -> SendResult:
        self.sent.append(notification)
        answer = self.script.get(notification.recipient_id)
        if answer == "hang":
            await self.release.wait()
        elif isinstance(answer, BaseException):
            raise answer
        elif isinstance(answer, SendResult):
            return answer
        return SendResult(Outcome.DELIVERED, provider_message_id=f"SM{len(self.sent)}")


@dataclass
class Ports:
    log: MemoryDeliveryLog = field(default_factory=MemoryDeliveryLog)
    notified: MemoryNotifiedLog = field(default_factory=MemoryNotifiedLog)

    def item(self, value: bytes | None, *, key: bytes | None = b"C1", offset: int = 0) -> Item:
        return Item(Source("t.alerts", 0, offset, key, value), self.log, self.notified)
