"""Dispatch: alerts in, one message per recipient and channel out, each at most once.

For every notification the log (the ``deliveries`` table, keyed by notification id) is checked
before sending and written as soon as the provider has answered, so a replayed alert finds the
record and sends nothing. The only window for a duplicate is a crash between the provider
accepting a message and that write (milliseconds; see docs/dispatch.md). Retryable failures are
not retried inline: the record is parked as "retrying" and the retry timer sends a RetryDue event
when its backoff expires, so one slow provider does not hold up other alerts. Permanent failures
and expired deadlines send the other channel to the same person and a "delivery failed" alert.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from alerts.delivery_log import (
    Delivery,
    after_attempt,
    apply_receipt,
    decode,
    decode_header,
    encode,
    fallback_alerts,
    needs_fallback,
)
from alerts.fanout import fan_out, rota_gaps
from alerts.notifiers.base import Outcome, SendResult
from alerts.retry import RetryPolicy
from schemas.alerts import (
    DISPATCH_INPUT_ADAPTER,
    Alert,
    DeliveryReceipt,
    Notification,
    RetryDue,
)
from schemas.records import DeadLetter
from streams.app import Resources, Wiring
from streams.decode import field_errors
from streams.due_index import DueEntry
from streams.faust_context import event_context
from streams.sending import send_durably
from streams.timers import TimerState, wire_timer
from telemetry.logging import episode_code_of, get_logger
from telemetry.metrics import notification_outcome, receipt_outcome

log = get_logger("missing_alerts.dispatch")


def wire_dispatch(w: Wiring, r: Resources) -> None:
    settings, policy, clock = r.settings, r.policy, r.clock
    retry_policy = RetryPolicy(
        initial=timedelta(seconds=settings.dispatch_retry_initial_s),
        cap=timedelta(seconds=settings.dispatch_retry_cap_s),
        deadline=timedelta(seconds=settings.dispatch_retry_deadline_s),
    )
    rng = random.Random()
    limit = asyncio.Semaphore(settings.dispatch_concurrency)
    metrics = r.metrics
    timer = TimerState("dispatch-retry", metrics=metrics)

    def delivery_header(key: bytes, value: bytes) -> tuple[bytes, datetime | None, str | None]:
        retry_at, child = decode_header(value)
        return child.encode(), retry_at, child

    async def emit_retry(entry: DueEntry, now: datetime) -> None:
        await w.retries.send(
            key=entry.tag.encode(),
            value=RetryDue(
                occurred_at=now,
                child_ref=entry.tag,
                notification_id=entry.key.decode(),
                due_at=entry.due_at,
            ),
        )

    wire_timer(
        w.app,
        w.deliveries,
        settings,
        clock,
        timer,
        source_topic=settings.topic("alerts"),
        header=delivery_header,
        emit=emit_retry,
    )

    def store(event: Any, delivery: Delivery) -> None:
        n = delivery.notification
        nid = n.notification_id.encode()
        with event_context(event):
            w.deliveries[nid] = encode(delivery)
            if delivery.status in ("queued", "sent") and delivery.attempts >= 1:
                remember_notified(n.episode_code, n.recipient_id)
        retry_at = delivery.next_attempt_at if delivery.status == "retrying" else None
        timer.index.set(nid, retry_at, delivery.notification.child_ref)

    def remember_notified(code: str, person: str) -> None:
        """Who may acknowledge by SMS reply: people actually sent something for the episode."""
        raw = w.notified.get(code.encode())
        people: list[str] = json.loads(raw) if raw else []
        if person not in people:
            w.notified[code.encode()] = json.dumps([*people, person]).encode()

    async def with_fallback(delivery: Delivery) -> Delivery:
        """Follow-ups are made durable before the record says they were made."""
        if not needs_fallback(delivery):
            return delivery
        now = clock.now()
        followups = fallback_alerts(delivery, now)
        await send_durably([(w.alerts, a.child_ref.encode(), a) for a in followups])
        metrics.notification(delivery.notification.channel.value, "fallback")
        log.warning(
            "delivery failed, fallback sent",
            episode_code=delivery.notification.episode_code,
            child_ref=delivery.notification.child_ref,
            channel=delivery.notification.channel.value,
            recipient_id=delivery.notification.recipient_id,
            error=delivery.last_error,
        )
        return delivery.model_copy(update={"fallback_done": True})

    async def attempt(
        event: Any, notification: Notification, alert: Alert, previous: Delivery | None
    ) -> None:
        # Each attempt runs in its own task (gather), so this binding reaches every log line
        # of this notification, the notifier's and send_durably's included, and no other.
        with bound_contextvars(
            episode_code=notification.episode_code, child_ref=notification.child_ref
        ):
            await _attempt(event, notification, alert, previous)

    async def _attempt(
        event: Any, notification: Notification, alert: Alert, previous: Delivery | None
    ) -> None:
        notifier = r.notifiers[notification.channel]
        channel = notification.channel.value
        async with limit:
            if previous is None:
                metrics.handed_off(alert, channel, clock.now())
            try:
                result = await notifier.send(notification)
            except Exception as exc:  # a notifier bug is a failed attempt, not a dead stream
                result = SendResult(Outcome.RETRYABLE, error=type(exc).__name__)
        delivery = after_attempt(
            notification, alert, previous, result, now=clock.now(), policy=retry_policy, rng=rng
        )
        metrics.notification(channel, notification_outcome(delivery.status))
        store(event, await with_fallback(delivery))
        log.info(
            "notification attempted",
            episode_code=notification.episode_code,
            child_ref=notification.child_ref,
            step_id=alert.step_id,
            channel=notification.channel.value,
            recipient_id=notification.recipient_id,
            notifier=notifier.name,
            outcome=result.outcome.value,
            status=delivery.status,
            attempt=delivery.attempts,
            error=result.error,
        )

    def existing(nid: str) -> Delivery | None:
        raw = w.deliveries.get(nid.encode())
        return decode(raw) if raw else None

    async def on_receipt(event: Any, receipt: DeliveryReceipt) -> None:
        current = existing(receipt.notification_id)
        if current is None:
            log.warning(
                "receipt for unknown notification",
                episode_code=episode_code_of(receipt.notification_id),
                child_ref=receipt.child_ref,
            )
            return
        updated = apply_receipt(current, receipt.status.value, receipt.error_code, clock.now())
        if updated is not None:
            outcome = receipt_outcome(updated.status)
            if outcome is not None:
                metrics.notification(updated.notification.channel.value, outcome)
            store(event, await with_fallback(updated))

    def dead_letter(event: Any, exc: ValidationError) -> tuple[Any, bytes | None, DeadLetter]:
        msg = event.message
        log.warning("dispatch input dead-lettered", topic=msg.topic, offset=msg.offset)
        metrics.dead_letter("dispatch", "invalid_dispatch_input")
        return (
            w.dead_letters,
            event.key,
            DeadLetter(
                occurred_at=clock.now(),
                child_ref=(event.key or b"unknown").decode("utf-8", "replace"),
                source_topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                reason="invalid_dispatch_input",
                errors=field_errors(exc),
                payload=(event.value or b"")[:64_000].decode("utf-8", "replace"),
            ),
        )

    def report_gaps(event: Any, alert: Alert) -> list[tuple[Any, bytes | None, DeadLetter]]:
        """Empty rota slots are counted and logged (ops alert on them); a message that can never
        be sent (no address on that channel) is dead-lettered with the reason."""
        undeliverable = []
        for gap in rota_gaps(alert, policy):
            metrics.rota_gap(gap.role, gap.kind)
            log.warning(
                "rota gap",
                episode_code=alert.episode_code,
                child_ref=alert.child_ref,
                role=gap.role,
                kind=gap.kind,
                recipient_id=gap.person_id,
                channel=gap.channel.value if gap.channel else None,
            )
            if gap.kind == "no_address" and gap.channel is not None:
                metrics.dead_letter("dispatch", "undeliverable_no_address")
                msg = event.message
                undeliverable.append(
                    (
                        w.dead_letters,
                        event.key,
                        DeadLetter(
                            occurred_at=clock.now(),
                            child_ref=alert.child_ref,
                            source_topic=msg.topic,
                            partition=msg.partition,
                            offset=msg.offset,
                            reason="undeliverable_no_address",
                            errors=[
                                {
                                    "field": f"rota.people.{gap.person_id}",
                                    "message": f"no address for {gap.channel.value}",
                                }
                            ],
                            payload=alert.model_dump_json(),
                        ),
                    )
                )
        return undeliverable

    @w.app.agent(w.dispatch_inputs, name="dispatch")
    async def dispatch(stream: Any) -> None:
        async for events in stream.take_events(
            settings.dispatch_batch_max, settings.dispatch_batch_within_s
        ):
            attempts: list[Any] = []
            claimed: set[str] = set()
            rejects: list[tuple[Any, bytes | None, DeadLetter]] = []
            for event in events:
                try:
                    item = DISPATCH_INPUT_ADAPTER.validate_json(event.value or b"")
                except ValidationError as exc:
                    rejects.append(dead_letter(event, exc))
                    continue
                if isinstance(item, Alert):
                    rejects += report_gaps(event, item)
                    for n in fan_out(
                        item,
                        policy,
                        base_url=settings.public_base_url,
                        link_secret=settings.link_key,
                        link_ttl=timedelta(seconds=settings.link_ttl_s),
                    ):
                        if n.notification_id in claimed or existing(n.notification_id):
                            # already sent (or being sent) for this step: never twice
                            metrics.notification(n.channel.value, "deduplicated")
                            continue
                        claimed.add(n.notification_id)
                        attempts.append(attempt(event, n, item, None))
                    # Rendering a batch's messages is CPU work with no await in it: yield after
                    # each alert so API requests on this event loop do not wait behind a batch.
                    await asyncio.sleep(0)
                elif isinstance(item, RetryDue):
                    current = existing(item.notification_id)
                    if (
                        current is not None
                        and current.status == "retrying"
                        and item.notification_id not in claimed
                    ):
                        claimed.add(item.notification_id)
                        attempts.append(
                            attempt(event, current.notification, current.alert, current)
                        )
                else:
                    await on_receipt(event, item)
            if rejects:
                await send_durably(rejects)
            await asyncio.gather(*attempts)
