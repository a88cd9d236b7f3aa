"""What the engine decides (Alert) and what dispatch does with it (Notification, receipt)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.common import CancelReason, Category, Envelope, EpisodeCode, Instant, Tier


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
    LATE_REPORT = "late_report"
    CANCELLED = "cancelled"
    DELIVERY_FAILED = "delivery_failed"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


_Name = Annotated[str, Field(min_length=1, max_length=64)]


class RepeatCount(BaseModel):
    """What called a strategy meeting: this many episodes starting within this window (the
    policy's rule, counted by the engine), so the message says what happened, not a fixed
    phrase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episodes: int = Field(ge=1, le=10_000)
    window: timedelta


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
    roles: tuple[_Name, ...] = Field(default=(), max_length=16)
    recipients: tuple[_Name, ...] = Field(
        default=(),
        max_length=64,
        description="Explicit person ids (e.g. everyone already notified).",
    )
    channels: tuple[Channel, ...] = Field(min_length=1, max_length=2)
    template: _Name
    local_authority: _Name | None = None
    police_force: _Name | None = None
    initials: str | None = Field(default=None, pattern=r"^[A-Z]{1,4}$")
    last_seen_at: Instant
    reported_at: Instant = Field(description="When the absence was reported (latency base).")
    profile_missing: bool = False
    returned_at: Instant | None = Field(
        default=None, description="When the child came back (return notice, RHI steps)."
    )
    rhi_due_at: Instant | None = Field(
        default=None, description="When the return home interview is due: return + policy."
    )
    repeat: RepeatCount | None = None
    cancel_reason: CancelReason | None = Field(
        default=None, description="Why a report was withdrawn (cancelled notices)."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        """Alerts (and delivery records holding one) written before the date of birth was
        dropped from alerts still carry it: read them, never keep it (docs/privacy.md)."""
        if isinstance(data, dict) and "date_of_birth" in data:
            data = {k: v for k, v in data.items() if k != "date_of_birth"}
        return data


class Notification(Envelope):
    """One recipient on one channel for one alert; ``notification_id`` is the idempotency key."""

    type: Literal["notification"] = "notification"
    notification_id: str = Field(description="episode:step:recipient:channel")
    alert_id: str
    episode_code: EpisodeCode
    recipient_id: str
    role: str | None = Field(
        default=None,
        max_length=64,
        description="The rota role the person was messaged as ('named' when named directly).",
    )
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
    notification_id: str = Field(min_length=1, max_length=300)
    provider_message_id: str | None = Field(default=None, max_length=64)
    status: DeliveryStatus
    error_code: str | None = Field(default=None, max_length=16)


class RetryDue(Envelope):
    """Emitted by dispatch's retry timer: time to try a notification again. Idempotent."""

    type: Literal["retry_due"] = "retry_due"
    notification_id: str = Field(min_length=1, max_length=300)
    due_at: Instant


class RetentionDue(Envelope):
    """Emitted by dispatch's retention sweep: a delivery record, or an episode's who-was-told
    entry once no delivery record of it is left, may have outlived its retention
    (docs/privacy.md). Dispatch checks again before deleting: applying it twice is harmless."""

    type: Literal["retention_due"] = "retention_due"
    notification_id: str | None = Field(default=None, min_length=1, max_length=300)
    episode_code: EpisodeCode | None = None

    @model_validator(mode="after")
    def _one_target(self) -> RetentionDue:
        if (self.notification_id is None) == (self.episode_code is None):
            raise ValueError("exactly one of notification_id and episode_code")
        return self


DispatchInput = Annotated[
    Alert | RetryDue | DeliveryReceipt | RetentionDue, Field(discriminator="type")
]
DISPATCH_INPUT_ADAPTER: TypeAdapter[DispatchInput] = TypeAdapter(DispatchInput)
