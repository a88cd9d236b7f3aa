"""Thin Faust agents: decode, apply the pure domain, emit. No business rules live here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import TimerDue
from schemas.records import DeadLetter
from streams.app import Resources, Wiring
from streams.due_index import DueEntry
from streams.engine_batch import process_batch
from streams.faust_context import event_context
from streams.sending import send_durably
from streams.table_codec import decode_header, decode_open
from streams.timers import TimerState, wire_timer
from telemetry.logging import get_logger, log_engine_effects

log = get_logger("missing_alerts.agents")


def _payload_text(value: bytes | None, limit: int = 64_000) -> str:
    return (value or b"")[:limit].decode("utf-8", "replace")


def wire_agents(w: Wiring, r: Resources) -> None:
    settings, policy, clock = r.settings, r.policy, r.clock
    metrics = r.metrics
    timer = TimerState(
        "escalation", metrics=metrics, observer=metrics.open_episode_tracker(decode_open)
    )

    def episode_header(key: bytes, value: bytes) -> tuple[bytes, datetime | None, str | None]:
        due_at, code = decode_header(value)
        return key, due_at, code

    async def emit_due(entry: DueEntry, now: datetime) -> None:
        await w.due.send(
            key=entry.key,
            value=TimerDue(
                occurred_at=now,
                child_ref=entry.key.decode(),
                episode_code=entry.tag,
                due_at=entry.due_at,
            ),
        )

    wire_timer(
        w.app,
        w.episodes,
        settings,
        clock,
        timer,
        source_topic=settings.topic("events"),
        header=episode_header,
        emit=emit_due,
    )

    def dead_letter(event: Any, reason: str, errors: list[dict[str, str]]) -> DeadLetter:
        msg = event.message
        log.warning(
            "input dead-lettered",
            reason=reason,
            fields=[e["field"] for e in errors],
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )
        return DeadLetter(
            occurred_at=clock.now(),
            child_ref=_payload_text(event.key, 200) or "unknown",
            source_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason,
            errors=errors,
            payload=_payload_text(event.value),
        )

    @w.app.agent(w.inputs, name="engine")
    async def engine(stream: Any) -> None:
        batch_max, within = settings.engine_batch_max, settings.engine_batch_within_s
        async for events in stream.take_events(batch_max, within):
            result = process_batch(
                events,
                read=w.episodes.get,
                policy=policy,
                now=clock.now,
                skew_tolerance=settings.clock_skew_tolerance,
            )
            # Effects first, state second: the new state is written only once Kafka holds
            # every alert and record it implies. A crash in between replays the batch, which
            # may repeat an alert (same alert_id, dropped by dispatch) but can never lose one.
            await send_durably(
                [(w.alerts, key, alert) for key, alert in result.alerts]
                + [(w.episode_events, key, rec) for key, rec in result.records]
                + [
                    (w.dead_letters, rej.event.key, dead_letter(rej.event, rej.reason, rej.errors))
                    for rej in result.rejected
                ]
            )
            for opened_by, code, child in result.opened:
                with event_context(opened_by):
                    w.episode_codes[code.encode()] = child
            for profiled_by, child, authority in result.profiles:
                with event_context(profiled_by):
                    w.directory[child] = authority.encode()
            for key, write in result.writes.items():
                with event_context(write.event):
                    w.episodes[key] = write.entry()
                timer.index.set(key, write.due_at, write.due_code)
            metrics.observe_engine_batch(result)
            log_engine_effects(log, result.alerts, result.records)
