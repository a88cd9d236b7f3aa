"""Dispatch's stages, at module level, after Alertmanager's notify pipeline: each is pure or
takes what it touches as arguments, so each has its own unit test
(tests/unit/test_dispatch_stages.py). streams/dispatch/pipeline.py runs them in order for one
input record.

    plan      alerts.fanout.plan (pure): the messages, the rota gaps, what would not render
    dedupe    which planned messages nobody has sent (or is sending) yet
    send      one provider call, bounded, a failure of any kind an outcome
    record    the notification log entry (what stops a replay reaching anyone twice)
    fallback  follow-ups of a failed message, durable before the record says they were made
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.delivery_log import Delivery, fallback_alerts, needs_fallback
from alerts.fanout import Plan
from alerts.notifiers.base import Notifier, Outcome, SendResult
from schemas.alerts import Notification
from streams.dispatch.ports import DeliveryLog, Emit, NotifiedLog


@dataclass(frozen=True)
class Letter:
    """A message that can never be sent, for the dead-letter topic."""

    reason: str
    field: str
    message: str


def undeliverable(planned: Plan) -> list[Letter]:
    """Plan stage, second half: the messages of a plan that cannot go, and why."""
    letters = [
        Letter(
            "undeliverable_no_address",
            f"rota.people.{gap.person_id}",
            f"no address for {gap.channel.value}",
        )
        for gap in planned.gaps
        if gap.kind == "no_address" and gap.channel is not None
    ]
    letters += [
        Letter("render_failed", f"message.{f.person_id}.{f.channel.value}", f.error)
        for f in planned.failures
    ]
    return letters


def dedupe(
    notifications: Sequence[Notification], log: DeliveryLog, in_flight: Container[str]
) -> tuple[list[Notification], list[Notification]]:
    """(to send, duplicates): a message is a duplicate if the notification log has it or an
    attempt for it is in progress (a replay arriving while the first is still sending)."""
    fresh: list[Notification] = []
    duplicates: list[Notification] = []
    seen: set[str] = set()
    for n in notifications:
        nid = n.notification_id
        if nid in seen or nid in in_flight or log.get(nid) is not None:
            duplicates.append(n)
        else:
            seen.add(nid)
            fresh.append(n)
    return fresh, duplicates


async def send(notifier: Notifier, notification: Notification, bound: timedelta) -> SendResult:
    """A notifier bug or hang is a failed, retryable attempt, not a dead stream; ``bound``
    holds even for a notifier that ignores its own timeout."""
    try:
        async with asyncio.timeout(bound.total_seconds()):
            return await notifier.send(notification)
    except TimeoutError:
        return SendResult(Outcome.RETRYABLE, error="TimeoutError")
    except Exception as exc:
        return SendResult(Outcome.RETRYABLE, error=type(exc).__name__)


def record(delivery: Delivery, log: DeliveryLog, notified: NotifiedLog) -> None:
    """Write the log entry; a message the provider took makes its recipient someone who was
    told (an SMS reply or an API acknowledgement in their name is then accepted)."""
    log.put(delivery)
    if delivery.status in ("queued", "sent") and delivery.attempts >= 1:
        n = delivery.notification
        notified.add(n.episode_code, n.recipient_id)


async def fallback(delivery: Delivery, emit: Emit, now: datetime) -> Delivery:
    """For a failed message: the other channel to the same person and a delivery-failed alert
    to the team manager, made durable; the returned record notes that they were sent."""
    if not needs_fallback(delivery):
        return delivery
    await emit(fallback_alerts(delivery, now))
    return delivery.model_copy(update={"fallback_done": True})
