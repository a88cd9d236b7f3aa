"""What the engine decides (Alert) and what dispatch does with it (Notification, receipt)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from schemas.common import Category, Envelope, EpisodeCode, Tier


class AlertKind(StrEnum):
    ABSENCE_REPORTED = "absence_reported"
    ESCALATION = "escalation"
    STILL_MISSING = "still_missing"
    RENOTIFY = "renotify"
    TIER_RAISED = "tier_raised"
    RETURNED = "returned"
    RHI_REMINDER = "rhi_reminder"
    RHI_OVERDUE = "rhi_overdue"
    STRATEGY_MEETING = "strategy_meeting"
    DELIVERY_FAILED = "delivery_failed"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class Alert(Envelope):
    """One decision to tell some roles something about an episode.

    ``alert_id`` is deterministic (episode, step, sequence) so a replayed engine decision
    produces the same id and dispatch can drop it.
    """

    type: Literal["alert"] = "alert"
    alert_id: str = Field(min_length=1, max_length=200)
    kind: AlertKind
    episode_code: EpisodeCode
    step_id: str = Field(min_length=1, max_length=100)
    tier: Tier
    category: Category
    roles: tuple[str, ...] = ()
    recipients: tuple[str, ...] = Field(
        default=(), description="Explicit person ids (e.g. everyone already notified)."
    )
    channels: tuple[Channel, ...]
    template: str
    local_authority: str | None = None
    police_force: str | None = None
    initials: str | None = None
    date_of_birth: date | None = None
    last_seen_at: AwareDatetime
    reported_at: AwareDatetime = Field(description="When the absence was reported (latency base).")
    profile_missing: bool = False


class Notification(Envelope):
    """One recipient on one channel for one alert; ``notification_id`` is the idempotency key."""

    type: Literal["notification"] = "notification"
    notification_id: str = Field(description="episode:step:recipient:channel")
    alert_id: str
    episode_code: EpisodeCode
    recipient_id: str
    channel: Channel
    address: str = Field(description="Phone number (E.164) or email address.")
    subject: str | None = None
    body: str


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class DeliveryReceipt(Envelope):
    type: Literal["delivery_receipt"] = "delivery_receipt"
    notification_id: str
    provider_message_id: str | None = None
    status: DeliveryStatus
    error_code: str | None = None


class RetryDue(Envelope):
    """Emitted by dispatch's retry timer: time to try a notification again. Idempotent."""

    type: Literal["retry_due"] = "retry_due"
    notification_id: str
    due_at: AwareDatetime


DispatchInput = Annotated[Alert | RetryDue | DeliveryReceipt, Field(discriminator="type")]
DISPATCH_INPUT_ADAPTER: TypeAdapter[DispatchInput] = TypeAdapter(DispatchInput)
