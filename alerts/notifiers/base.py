"""The notifier contract, after Alertmanager's: send, and say whether a failure is worth retrying.

Dispatch owns retries, backoff and de-duplication; a notifier only attempts one delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from schemas.alerts import Notification


class Outcome(StrEnum):
    DELIVERED = "delivered"  # handed to the provider (SMS/SMTP accepted it)
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    error: str | None = None


class Notifier(Protocol):
    name: str

    async def send(self, notification: Notification) -> SendResult: ...
