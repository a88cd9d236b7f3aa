"""Dispatch's pipeline: one input record at a time, each on its own, through the stages of
streams/dispatch/stages.py (after Alertmanager's notify pipeline).

    alert   -> plan (fan-out, rota gaps) -> dedupe (notification log, in-flight claims)
            -> send (notifier) -> record (delivery log) -> fallback (other channel + manager)
    retry   -> send -> record -> fallback
    receipt -> record -> fallback
    retention sweep -> delete what outlived its retention

The ``Dispatcher`` holds what spans records (the in-flight claims, the bound on provider calls)
and runs the stages against the ports of streams/dispatch/ports.py, so every path is testable
without a broker (tests/unit/test_dispatch_pipeline.py). The Faust agent
(streams/dispatch/agent.py) is a thin shell that binds the ports to its tables and topics.

Isolation: ``handle`` never raises for an input. Whatever one record, one message or one
provider call raises is dead-lettered for that item alone, with the reason; a hung provider
holds only its own message (sends of different records run concurrently, and every attempt
is bounded).
"""

from __future__ import annotations

import asyncio
import random

from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from alerts.delivery_log import Delivery, after_attempt, apply_receipt, expires_at
from alerts.fanout import Plan, plan
from alerts.notifiers.base import Notifier
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
from streams.dispatch.ports import DispatchConfig, Emit, Item
from streams.dispatch.stages import dedupe, fallback, record, send, undeliverable
from streams.kafka.decode import field_errors
from streams.runtime.clock import Clock
from streams.runtime.failpoints import failpoint
from telemetry.logging import episode_code_of, get_logger
from telemetry.metrics import Metrics, notification_outcome, receipt_outcome

log = get_logger("missing_alerts.dispatch")


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
        if alert.kind in (AlertKind.RETURNED, AlertKind.CANCELLED):
            item.notified.close(alert.episode_code, alert.occurred_at)
        fresh, duplicates = dedupe(planned.notifications, item.log, self._in_flight)
        for n in duplicates:
            self.metrics.notification(n.channel.value, "deduplicated")
        loop = asyncio.get_running_loop()
        claims = {n.notification_id: loop.create_future() for n in fresh}
        # Claimed before any await: a concurrent replay sees them in flight.
        self._in_flight.update(claims)
        try:
            # Rendering is CPU work with no await in it: yield so API requests on this event
            # loop do not wait behind a large alert.
            await asyncio.sleep(0)
            await asyncio.gather(*(self._attempt_alone(n, alert, None, item) for n in fresh))
        finally:
            # An attempt that never started (this record cancelled first) must not leave its
            # claim behind: a replay would then never send that message.
            for nid, claim in claims.items():
                self._release(nid, claim)

    def _release(self, nid: str, claim: asyncio.Future[None]) -> None:
        if self._in_flight.get(nid) is claim:
            del self._in_flight[nid]
        if not claim.done():
            claim.set_result(None)

    async def _report(self, planned: Plan, alert: Alert, item: Item) -> None:
        """Rota gaps are counted and logged (ops alert on them); a message that can never be
        sent, for want of an address or because it would not render, is dead-lettered."""
        for gap in planned.gaps:
            self.metrics.rota_gap(gap.role, gap.kind)
            log.warning(
                "rota gap",
                role=gap.role,
                kind=gap.kind,
                recipient_id=gap.person_id,
                channel=gap.channel.value if gap.channel else None,
            )
        payload = _alert_payload(alert)
        for letter in undeliverable(planned):
            errors = [{"field": letter.field, "message": letter.message}]
            await self._dead_letter(item, letter.reason, errors, payload)

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
            self._release(n.notification_id, done)

    async def _attempt(
        self, n: Notification, alert: Alert, previous: Delivery | None, item: Item
    ) -> None:
        notifier = self.notifiers[n.channel]
        async with self._slots:
            if previous is None:
                self.metrics.handed_off(alert, n.channel.value, self.clock.now())
            result = await send(notifier, n, self.config.attempt_timeout)
        failpoint("dispatch.after_send_before_record")
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
        record(await self._fallback(delivery), item.log, item.notified)
        # The record is what stops a replay sending this message again: make it durable now,
        # not at the next offset commit. From the provider's answer to here is the whole
        # window in which a crash can send a message twice (docs/dispatch.md).
        await item.log.flush()
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

    async def _fallback(self, delivery: Delivery) -> Delivery:
        done = await fallback(delivery, self.emit, self.clock.now())
        if done is not delivery:
            n = delivery.notification
            self.metrics.notification(n.channel.value, "fallback")
            log.warning(
                "delivery failed, fallback sent",
                channel=n.channel.value,
                recipient_id=n.recipient_id,
                error=delivery.last_error,
            )
        return done

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
        claim = asyncio.get_running_loop().create_future()
        self._in_flight[due.notification_id] = claim
        try:
            await self._attempt_alone(current.notification, current.alert, current, item)
        finally:
            self._release(due.notification_id, claim)

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
        record(await self._fallback(updated), item.log, item.notified)

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
