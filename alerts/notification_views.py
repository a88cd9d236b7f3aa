"""Who was told about an episode, on which channel, and where each message stands: the duty
desk's view of the notification log, kept per episode code. Pure.

The ``deliveries`` table (alerts/delivery_log.py) is partitioned by child, so only the worker
owning a child could answer from it, and it holds addresses and message bodies. Dispatch
therefore also writes this view, one record per episode in the ``episode-notifications``
table every worker reads: no address, no body, no provider error text (Twilio's can quote the
number), only what a duty worker needs to see that the police liaison's SMS was delivered or
that the email to the manager failed. Addresses are added at read time, from the rota, for
keys allowed to see them (streams/web/episode_notifications.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from alerts.delivery_log import Delivery, Status
from schemas.alerts import Channel


class NotificationView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    notification_id: str
    step_id: str
    kind: str
    recipient_id: str
    role: str | None = None
    channel: Channel
    status: Status
    attempts: int
    first_attempt_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None = None
    fallback_sent: bool = False


def view_of(delivery: Delivery) -> NotificationView:
    n, alert = delivery.notification, delivery.alert
    return NotificationView(
        notification_id=n.notification_id,
        step_id=alert.step_id,
        kind=alert.kind.value,
        recipient_id=n.recipient_id,
        role=n.role,
        channel=n.channel,
        status=delivery.status,
        attempts=delivery.attempts,
        first_attempt_at=delivery.first_attempt_at,
        updated_at=delivery.updated_at,
        next_attempt_at=delivery.next_attempt_at,
        fallback_sent=delivery.fallback_done,
    )


def decode(raw: bytes | None) -> list[NotificationView]:
    """An unreadable entry (or one of them) is left out rather than failing the episode view."""
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    out: list[NotificationView] = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(NotificationView.model_validate(item))
        except ValidationError:
            continue
    return out


def encode(views: list[NotificationView]) -> bytes:
    rows: list[dict[str, Any]] = [v.model_dump(mode="json", exclude_defaults=True) for v in views]
    return json.dumps(rows, separators=(",", ":")).encode()


def with_view(raw: bytes | None, view: NotificationView) -> bytes | None:
    """The episode's entry with ``view`` put in its place (sent first, then by id, so a replay
    writes the same bytes), or None when nothing changed."""
    current = decode(raw)
    kept = [v for v in current if v.notification_id != view.notification_id]
    if len(kept) < len(current) and view in current:
        return None
    merged = sorted([*kept, view], key=lambda v: (v.first_attempt_at, v.notification_id))
    return encode(merged)


def without(raw: bytes | None, notification_id: str) -> bytes | None:
    """The entry without that notification: ``b""`` when none is left (delete the key), None
    when it was not there."""
    current = decode(raw)
    kept = [v for v in current if v.notification_id != notification_id]
    if len(kept) == len(current):
        return None
    return encode(kept) if kept else b""
