"""The notification log: one record per (episode, step, recipient, channel), after Alertmanager's
nflog. Checked before every send so a replayed alert cannot reach the same person twice, and
moved only forward by attempts and provider receipts. Pure.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from alerts.notifiers.base import Outcome, SendResult
from alerts.retry import RetryPolicy, next_attempt_at
from schemas.alerts import Alert, AlertKind, Channel, Notification
from schemas.wire import HeaderedCodec

Status = Literal["retrying", "queued", "sent", "delivered", "undelivered", "failed"]

# Provider receipts can arrive out of order; a status only replaces one of lower rank.
RANK: dict[str, int] = {
    "retrying": 0,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}
FAILED: frozenset[str] = frozenset({"undelivered", "failed"})


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notification: Notification
    alert: Alert
    status: Status
    attempts: int = 0
    first_attempt_at: datetime
    next_attempt_at: datetime | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    fallback_done: bool = False
    updated_at: datetime


def after_attempt(
    notification: Notification,
    alert: Alert,
    previous: Delivery | None,
    result: SendResult,
    *,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> Delivery:
    attempts = (previous.attempts if previous else 0) + 1
    first = previous.first_attempt_at if previous else now
    base = Delivery(
        notification=notification,
        alert=alert,
        status="retrying",
        attempts=attempts,
        first_attempt_at=first,
        updated_at=now,
        fallback_done=previous.fallback_done if previous else False,
    )
    if result.outcome is Outcome.DELIVERED:
        accepted: Status = "queued" if notification.channel is Channel.SMS else "sent"
        return base.model_copy(
            update={"status": accepted, "provider_message_id": result.provider_message_id}
        )
    if result.outcome is Outcome.RETRYABLE:
        at = next_attempt_at(policy, first_attempt_at=first, attempt=attempts, now=now, rng=rng)
        if at is not None:
            return base.model_copy(update={"next_attempt_at": at, "last_error": result.error})
        return base.model_copy(
            update={"status": "failed", "last_error": f"deadline passed: {result.error}"}
        )
    return base.model_copy(update={"status": "failed", "last_error": result.error})


def apply_receipt(
    delivery: Delivery, status: str, error_code: str | None, now: datetime
) -> Delivery | None:
    """The updated record, or None when the receipt would move the status backwards."""
    if status not in RANK or RANK[status] <= RANK[delivery.status]:
        return None
    error = f"provider {error_code}" if error_code else delivery.last_error
    return delivery.model_copy(update={"status": status, "last_error": error, "updated_at": now})


def needs_fallback(delivery: Delivery) -> bool:
    return delivery.status in FAILED and not delivery.fallback_done


def fallback_alerts(delivery: Delivery, now: datetime) -> list[Alert]:
    """The same step on the other channel to the same person, and a 'delivery failed' alert to
    the team manager (never for a delivery-failed alert itself, so failures cannot cascade)."""
    n, alert = delivery.notification, delivery.alert
    other = Channel.EMAIL if n.channel is Channel.SMS else Channel.SMS
    out = [
        alert.model_copy(
            update={
                "roles": (),
                "recipients": (n.recipient_id,),
                "channels": (other,),
                "occurred_at": now,
            }
        )
    ]
    if alert.kind is not AlertKind.DELIVERY_FAILED:
        step = f"delivery-failed-{alert.step_id}-{n.recipient_id}-{n.channel.value}"
        out.append(
            alert.model_copy(
                update={
                    "alert_id": f"{alert.episode_code}:{step}",
                    "step_id": step,
                    "kind": AlertKind.DELIVERY_FAILED,
                    "roles": ("team_manager",),
                    "recipients": (),
                    "channels": (Channel.EMAIL, Channel.SMS),
                    "template": "delivery_failed",
                    "occurred_at": now,
                }
            )
        )
    return out


def expires_at(
    updated_at: datetime, closed_at: datetime | None, retention: timedelta
) -> datetime | None:
    """When a delivery record (and the phone number and message in it) is deleted: a retention
    period after the later of its last change and the episode's close. While the episode is
    open (``closed_at`` None) it is kept: the duty team needs to see who was told."""
    if closed_at is None:
        return None
    return max(updated_at, closed_at) + retention


class Header(NamedTuple):
    """The first line of a stored record: what the timers read without parsing the record."""

    retry_at: datetime | None
    child_ref: str
    updated_at: datetime | None


def _header(delivery: Delivery) -> bytes:
    """What the retry index and the retention sweep need, without parsing the record."""
    retry = delivery.next_attempt_at if delivery.status == "retrying" else None
    return json.dumps(
        {
            "retry": retry.isoformat() if retry else None,
            "child": delivery.notification.child_ref,
            "updated": delivery.updated_at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()


# The deliveries table's codec (schemas/wire.py): header line + the record.
DELIVERY_CODEC: HeaderedCodec[Delivery] = HeaderedCodec(
    header=_header,
    body=lambda delivery: delivery.model_dump_json().encode(),
    read=lambda _line, body: Delivery.model_validate_json(body),
)


def encode(delivery: Delivery) -> bytes:
    return DELIVERY_CODEC.encode(delivery)


def decode(value: bytes) -> Delivery:
    return DELIVERY_CODEC.decode(value)


def decode_header(value: bytes) -> Header:
    header = DELIVERY_CODEC.header_of(value)
    retry, updated = header.get("retry"), header.get("updated")
    return Header(
        datetime.fromisoformat(retry) if retry else None,
        str(header["child"]),
        datetime.fromisoformat(updated) if updated else None,
    )
