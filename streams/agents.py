"""Thin Faust agents: decode, apply the pure domain, emit. No business rules live here."""

from __future__ import annotations

import asyncio
from typing import Any

from alerts.fanout import fan_out
from schemas.alerts import Alert
from schemas.records import DeadLetter
from streams.app import Resources, Wiring
from streams.decode import Rejection, decode_input
from streams.episodes import machine
from streams.table_codec import decode_state, encode_entry
from streams.timers import TimerState, wire_timer
from telemetry.logging import get_logger

log = get_logger("missing_alerts.agents")


def _payload_text(value: bytes | None, limit: int = 64_000) -> str:
    return (value or b"")[:limit].decode("utf-8", "replace")


def wire_agents(w: Wiring, r: Resources) -> None:
    settings, policy, clock = r.settings, r.policy, r.clock
    timer = TimerState()
    wire_timer(w, r, timer)

    async def dead_letter(event: Any, reason: str, errors: list[dict[str, str]]) -> None:
        msg = event.message
        await w.dead_letters.send(
            key=event.key,
            value=DeadLetter(
                occurred_at=clock.now(),
                child_ref=_payload_text(event.key, 200) or "unknown",
                source_topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                reason=reason,
                errors=errors,
                payload=_payload_text(event.value),
            ),
        )
        log.warning(
            "input dead-lettered",
            reason=reason,
            fields=[e["field"] for e in errors],
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )

    @w.app.agent(w.inputs, name="engine")
    async def engine(stream: Any) -> None:
        async for event in stream.events():
            now = clock.now()
            decoded = decode_input(
                event.key, event.value, now=now, skew_tolerance=settings.clock_skew_tolerance
            )
            if isinstance(decoded, Rejection):
                await dead_letter(event, decoded.reason, decoded.errors)
                continue
            raw_state = w.episodes.get(event.key)
            try:
                state = decode_state(raw_state) if raw_state else None
                new_state, effects = machine.apply(state, decoded, now, policy)
                due = machine.next_due(new_state, policy)
            except Exception as exc:  # a bug must not stop the stream: park the event
                log.exception("engine failed on event", event_type=decoded.type)
                await dead_letter(
                    event, "engine_error", [{"field": "(engine)", "message": type(exc).__name__}]
                )
                continue
            # Effects first, state second: the new state is written only once Kafka holds
            # every alert and record it implies. A crash in between replays the event, which
            # may repeat an alert (same alert_id, dropped by dispatch) but can never lose one.
            pending = [await w.alerts.send(key=event.key, value=a) for a in effects.alerts]
            pending += [
                await w.episode_events.send(key=event.key, value=rec) for rec in effects.records
            ]
            if pending:
                await asyncio.gather(*pending)
            due_at, due_code = (due.at, due.episode_code) if due else (None, None)
            w.episodes[event.key] = encode_entry(new_state, due_at, due_code)
            timer.index.set(event.key, due_at, due_code)
            for alert in effects.alerts:
                log.info(
                    "alert decided",
                    episode_code=alert.episode_code,
                    child_ref=alert.child_ref,
                    step_id=alert.step_id,
                    tier=alert.tier.value,
                )

    @w.app.agent(w.alerts, name="dispatch")
    async def dispatch(stream: Any) -> None:
        async for value in stream:
            alert = Alert.model_validate(value)
            for notification in fan_out(alert, policy, base_url=settings.public_base_url):
                notifier = r.notifiers[notification.channel]
                result = await notifier.send(notification)
                log.info(
                    "notification sent",
                    episode_code=alert.episode_code,
                    child_ref=alert.child_ref,
                    step_id=alert.step_id,
                    channel=notification.channel.value,
                    recipient_id=notification.recipient_id,
                    notifier=notifier.name,
                    outcome=result.outcome.value,
                )
