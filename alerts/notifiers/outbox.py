"""A local JSON-lines outbox: lets the whole pipeline run with no Twilio or SMTP credentials."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from alerts.notifiers.base import Outcome, SendResult
from schemas.alerts import Notification


class OutboxNotifier:
    name = "outbox"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send(self, notification: Notification) -> SendResult:
        line = json.dumps(notification.model_dump(mode="json"), sort_keys=True) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        return SendResult(Outcome.DELIVERED, provider_message_id=notification.notification_id)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
