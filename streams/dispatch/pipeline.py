"""Dispatch as stages, after Alertmanager's notify pipeline: one input record at a time, each
on its own.

    alert   -> plan (fan-out, rota gaps) -> dedupe (notification log, in-flight claims)
            -> send (notifier) -> record (delivery log) -> fallback (other channel + manager)
    retry   -> send -> record -> fallback
    receipt -> record -> fallback
    retention sweep -> delete what outlived its retention

The stages that decide are pure functions in ``alerts/`` (``fanout.plan``,
``delivery_log.after_attempt`` / ``apply_receipt`` / ``fallback_alerts`` / ``expires_at``);
this module runs them against ports (the delivery log, the notified log, a durable producer,
the notifiers, the clock), so every path is testable without a broker
(tests/unit/test_dispatch_pipeline.py). The Faust agent (streams/dispatch/agent.py) is a thin
shell that binds the ports to its tables and topics.

Isolation: ``handle`` never raises for an input. Whatever one record, one message or one
provider call raises is dead-lettered for that item alone, with the reason; a hung provider
holds only its own message (sends of different records run concurrently, and every attempt
is bounded by a timeout).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ValidationError
from structlog.contextvars import bound_contextvars

from alerts.delivery_log import (
    Delivery,
    after_attempt,
    apply_receipt,
    expires_at,
    fallback_alerts,
    needs_fallback,
)
from alerts.fanout import Links, Plan, plan
from alerts.notifiers.base import Notifier, Outcome, SendResult
from alerts.retry import RetryPolicy
from config.policy import Policy
from schemas.alerts import (
    DISPATCH_INPUT_ADAPTER,
    Alert,
    AlertKind,
    Channel,
    DeliveryReceipt,
    Notification,
    RetentionDue,
    RetryDue,
)
from schemas.records import DeadLetter
from schemas.redaction import KeptPayload, keep_payload
from streams.kafka.decode import field_errors
from streams.runtime.clock import Clock
from telemetry.logging import episode_code_of, get_logger
from telemetry.metrics import Metrics, notification_outcome, receipt_outcome

log = get_logger("missing_alerts.dispatch")


# ------------------------------------------------------------------------------- ports


class DeliveryLog(Protocol):
    """The notification log (Alertmanager's nflog, per person): checked before every send."""

    def get(self, notification_id: str) -> Delivery | None: ...

    def put(self, delivery: Delivery) -> None: ...

    def delete(self, notification_id: str) -> None: ...


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


# ------------------------------------------------------------------------------ stages


class Dispatcher:
    def __init__(
        self,
        *,
        policy: Policy,
        config: DispatchConfig,
        notifiers: dict[Channel, Notifier],
        emit: Emit,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.policy, self.config, self.notifiers = policy, config, notifiers
        self.emit, self.clock, self.metrics = emit, clock, metrics
        self.rng = rng or random.Random()
        self._slots = asyncio.Semaphore(config.concurrency)
        # Notification ids with an attempt in progress: a replayed alert must not start a second
        # one, and a receipt or retry for it waits until the attempt is recorded.
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def handle(self, item: Item) -> None:
        """Run one input record through its stages. Never raises for the input's sake."""
        raw = item.source.value
        try:
            parsed = DISPATCH_INPUT_ADAPTER.validate_json(raw or b"")
        except ValidationError as exc:
            await self._dead_letter(item, "invalid_dispatch_input", field_errors(exc))
            return
        code = getattr(parsed, "episode_code", None) or episode_code_of(
            getattr(parsed, "notification_id", None) or ""
        )
        try:
            with bound_contextvars(episode_code=code, child_ref=parsed.child_ref):
                match parsed:
                    case Alert():
                        await self.on_alert(parsed, item)
                    case RetryDue():
                        await self.on_retry(parsed, item)
                    case DeliveryReceipt():
                        await self.on_receipt(parsed, item)
                    case RetentionDue():
                        await self.on_retention(parsed, item)
        except Exception as exc:  # isolation: this record, not the stream
            log.warning("dispatch input failed", error=type(exc).__name__, episode_code=code)
            error = {"field": "(dispatch)", "message": type(exc).__name__}
            await self._dead_letter(item, "dispatch_error", [error])

    # -- alert: plan, dedupe, then every message on its own ----------------------------------

    async def on_alert(self, alert: Alert, item: Item) -> None:
        planned = plan(alert, self.policy, self.config.links)
        await self._report(planned, alert, item)
        if alert.kind is AlertKind.RETURNED:
            item.notified.close(alert.episode_code, alert.occurred_at)
        attempts = []
        for n in planned.notifications:
            if not self._claim(n.notification_id, item):
                self.metrics.notification(n.channel.value, "deduplicated")
                continue
            attempts.append(self._attempt_alone(n, alert, None, item))
        # Rendering is CPU work with no await in it: yield so API requests on this event loop
        # do not wait behind a large alert.
        await asyncio.sleep(0)
        await asyncio.gather(*attempts)

    def _claim(self, nid: str, item: Item) -> bool:
        """Dedupe stage: False if the person already has (or is being sent) this step."""
        if nid in self._in_flight or item.log.get(nid) is not None:
            return False
        self._in_flight[nid] = asyncio.get_running_loop().create_future()
        return True

    async def _report(self, planned: Plan, alert: Alert, item: Item) -> None:
        """Rota gaps are counted and logged (ops alert on them); a message that can never be
        sent, for want of an address or because it would not render, is dead-lettered."""
        letters: list[tuple[str, str, str]] = []
        for gap in planned.gaps:
            self.metrics.rota_gap(gap.role, gap.kind)
            log.warning(
                "rota gap",
                role=gap.role,
                kind=gap.kind,
                recipient_id=gap.person_id,
                channel=gap.channel.value if gap.channel else None,
            )
            if gap.kind == "no_address" and gap.channel is not None:
                letters.append(
                    (
                        "undeliverable_no_address",
                        f"rota.people.{gap.person_id}",
                        f"no address for {gap.channel.value}",
                    )
                )
        for failure in planned.failures:
            letters.append(
                (
                    "render_failed",
                    f"message.{failure.person_id}.{failure.channel.value}",
                    failure.error,
                )
            )
        payload = _alert_payload(alert)
        for reason, fieldname, message in letters:
            await self._dead_letter(
                item, reason, [{"field": fieldname, "message": message}], payload
            )

    # -- send, record, fallback ---------------------------------------------------------------

    async def _attempt_alone(
        self, n: Notification, alert: Alert, previous: Delivery | None, item: Item
    ) -> None:
        """One message's attempt; whatever it raises is dead-lettered for this message only."""
        done = self._in_flight.setdefault(
            n.notification_id, asyncio.get_running_loop().create_future()
        )
        try:
            with bound_contextvars(episode_code=n.episode_code, child_ref=n.child_ref):
                await self._attempt(n, alert, previous, item)
        except Exception as exc:
            log.warning(
                "notification failed in dispatch",
                recipient_id=n.recipient_id,
                channel=n.channel.value,
                error=type(exc).__name__,
            )
            error = {"field": f"notification.{n.notification_id}", "message": type(exc).__name__}
            await self._dead_letter(item, "dispatch_error", [error], _alert_payload(alert))
        finally:
            self._in_flight.pop(n.notification_id, None)
            if not done.done():
                done.set_result(None)

    async def _attempt(
        self, n: Notification, alert: Alert, previous: Delivery | None, item: Item
    ) -> None:
        notifier = self.notifiers[n.channel]
        async with self._slots:
            if previous is None:
                self.metrics.handed_off(alert, n.channel.value, self.clock.now())
            result = await self._send(notifier, n)
        delivery = after_attempt(
            n,
            alert,
            previous,
            result,
            now=self.clock.now(),
            policy=self.config.retry,
            rng=self.rng,
        )
        self.metrics.notification(n.channel.value, notification_outcome(delivery.status))
        self._record(await self._fallback(delivery), item)
        log.info(
            "notification attempted",
            step_id=alert.step_id,
            channel=n.channel.value,
            recipient_id=n.recipient_id,
            notifier=notifier.name,
            outcome=result.outcome.value,
            status=delivery.status,
            attempt=delivery.attempts,
            error=result.error,
        )

    async def _send(self, notifier: Notifier, n: Notification) -> SendResult:
        """Send stage: a notifier bug or hang is a failed, retryable attempt, not a dead
        stream; the outer timeout holds even for a notifier that ignores its own."""
        try:
            async with asyncio.timeout(self.config.attempt_timeout.total_seconds()):
                return await notifier.send(n)
        except TimeoutError:
            return SendResult(Outcome.RETRYABLE, error="TimeoutError")
        except Exception as exc:
            return SendResult(Outcome.RETRYABLE, error=type(exc).__name__)

    def _record(self, delivery: Delivery, item: Item) -> None:
        """Record stage: the log entry is what makes a replayed alert send nothing."""
        item.log.put(delivery)
        if delivery.status in ("queued", "sent") and delivery.attempts >= 1:
            n = delivery.notification
            item.notified.add(n.episode_code, n.recipient_id)

    async def _fallback(self, delivery: Delivery) -> Delivery:
        """Fallback stage: follow-ups are made durable before the record says they were made."""
        if not needs_fallback(delivery):
            return delivery
        await self.emit(fallback_alerts(delivery, self.clock.now()))
        n = delivery.notification
        self.metrics.notification(n.channel.value, "fallback")
        log.warning(
            "delivery failed, fallback sent",
            channel=n.channel.value,
            recipient_id=n.recipient_id,
            error=delivery.last_error,
        )
        return delivery.model_copy(update={"fallback_done": True})

    # -- retries, receipts, retention ---------------------------------------------------------

    async def _settled(self, nid: str) -> None:
        """Wait until no attempt for ``nid`` is in progress (its record is then written)."""
        while (pending := self._in_flight.get(nid)) is not None:
            await asyncio.shield(pending)

    async def on_retry(self, due: RetryDue, item: Item) -> None:
        await self._settled(due.notification_id)
        current = item.log.get(due.notification_id)
        if current is None or current.status != "retrying":
            return
        self._in_flight[due.notification_id] = asyncio.get_running_loop().create_future()
        await self._attempt_alone(current.notification, current.alert, current, item)

    async def on_receipt(self, receipt: DeliveryReceipt, item: Item) -> None:
        await self._settled(receipt.notification_id)
        current = item.log.get(receipt.notification_id)
        if current is None:
            log.warning("receipt for unknown notification")
            return
        now = self.clock.now()
        updated = apply_receipt(current, receipt.status.value, receipt.error_code, now)
        if updated is None:
            return
        outcome = receipt_outcome(updated.status)
        if outcome is not None:
            self.metrics.notification(updated.notification.channel.value, outcome)
        self._record(await self._fallback(updated), item)

    async def on_retention(self, due: RetentionDue, item: Item) -> None:
        """Delete what outlived its retention: a delivery record a retention after the later
        of its last change and the episode's close; the episode's who-was-told entry (asked
        for by the sweep once no delivery record of the episode is left, because those need
        its close time to expire) a retention after the close."""
        now = self.clock.now()
        if due.episode_code is not None:
            closed = item.notified.closed_at(due.episode_code)
            if closed is not None and closed + self.config.retention <= now:
                item.notified.forget(due.episode_code)
                self.metrics.retention_deleted("notified")
            return
        nid = str(due.notification_id)
        await self._settled(nid)
        code = episode_code_of(nid)
        current = item.log.get(nid)
        if current is None:
            return
        closed = item.notified.closed_at(code) if code else None
        expiry = expires_at(current.updated_at, closed, self.config.retention)
        if expiry is not None and expiry <= now:
            item.log.delete(nid)
            self.metrics.retention_deleted("delivery")

    # -- dead letters ---------------------------------------------------------------------------

    async def _dead_letter(
        self,
        item: Item,
        reason: str,
        errors: list[dict[str, str]],
        payload: KeptPayload | None = None,
    ) -> None:
        src = item.source
        self.metrics.dead_letter("dispatch", reason)
        log.warning(
            "dispatch input dead-lettered",
            reason=reason,
            topic=src.topic,
            partition=src.partition,
            offset=src.offset,
        )
        letter = DeadLetter.of(
            occurred_at=self.clock.now(),
            key=src.key,
            source_topic=src.topic,
            partition=src.partition,
            offset=src.offset,
            reason=reason,
            errors=errors,
            payload=payload or keep_payload(src.value),
        )
        await self.emit([letter])


def _alert_payload(alert: Alert) -> KeptPayload:
    return keep_payload(alert.model_dump_json().encode())
