"""Each of dispatch's stages on its own (streams/dispatch/stages.py; plan is alerts.fanout.plan,
tested in test_fanout.py)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from alerts.delivery_log import after_attempt
from alerts.fanout import Gap, Plan, Unrendered
from alerts.notifiers.base import Outcome, SendResult
from alerts.retry import RetryPolicy
from schemas.alerts import Alert, AlertKind, Channel, Notification
from schemas.common import Category, Tier
from streams.dispatch.stages import Letter, dedupe, fallback, record, send, undeliverable
from tests.support.dispatch_ports import (
    Emitted,
    MemoryDeliveryLog,
    MemoryNotifiedLog,
    ScriptedNotifier,
)

T0 = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
ALERT = Alert(
    occurred_at=T0,
    child_ref="C1",
    alert_id="ABCD23:high-t0",
    kind=AlertKind.ABSENCE_REPORTED,
    episode_code="ABCD23",
    step_id="high-t0",
    tier=Tier.HIGH,
    category=Category.MISSING,
    channels=(Channel.SMS,),
    template="absence_reported",
    last_seen_at=T0,
    reported_at=T0,
)


def note(person: str) -> Notification:
    return Notification(
        occurred_at=T0,
        child_ref="C1",
        notification_id=f"ABCD23:high-t0:{person}:sms",
        alert_id=ALERT.alert_id,
        episode_code="ABCD23",
        recipient_id=person,
        channel=Channel.SMS,
        address="+447700900101",
        body="x",
    )


def attempted(person: str, outcome: Outcome) -> object:
    return after_attempt(
        note(person),
        ALERT,
        None,
        SendResult(outcome, error=None if outcome is Outcome.DELIVERED else "e"),
        now=T0,
        policy=RetryPolicy(jitter=0),
        rng=random.Random(0),
    )


def test_undeliverable_names_each_message_that_cannot_go() -> None:
    planned = Plan(
        gaps=[
            Gap("slot_empty", "duty_social_worker", "edt"),
            Gap("no_address", "police_liaison", "pl-1", Channel.EMAIL),
        ],
        failures=[Unrendered("tm-1", Channel.SMS, "UndefinedError")],
    )
    assert undeliverable(planned) == [
        Letter("undeliverable_no_address", "rota.people.pl-1", "no address for email"),
        Letter("render_failed", "message.tm-1.sms", "UndefinedError"),
    ]


def test_dedupe_by_the_log_the_claims_and_within_the_plan() -> None:
    log = MemoryDeliveryLog()
    log.put(attempted("a", Outcome.DELIVERED))  # type: ignore[arg-type]
    fresh, duplicates = dedupe(
        [note("a"), note("b"), note("c"), note("c")], log, {"ABCD23:high-t0:b:sms"}
    )
    assert [n.recipient_id for n in fresh] == ["c"]
    assert [n.recipient_id for n in duplicates] == ["a", "b", "c"]


async def test_send_turns_any_failure_and_any_hang_into_a_retryable_outcome() -> None:
    notifier = ScriptedNotifier()
    notifier.script = {"bug": RuntimeError("oops"), "hang": "hang"}
    ok = await send(notifier, note("fine"), timedelta(seconds=1))
    assert ok.outcome is Outcome.DELIVERED
    bug = await send(notifier, note("bug"), timedelta(seconds=1))
    assert (bug.outcome, bug.error) == (Outcome.RETRYABLE, "RuntimeError")
    hung = await asyncio.wait_for(send(notifier, note("hang"), timedelta(seconds=0.05)), 2)
    assert (hung.outcome, hung.error) == (Outcome.RETRYABLE, "TimeoutError")


def test_record_writes_the_log_and_remembers_who_was_told() -> None:
    log, notified = MemoryDeliveryLog(), MemoryNotifiedLog()
    record(attempted("a", Outcome.DELIVERED), log, notified)  # type: ignore[arg-type]
    record(attempted("b", Outcome.RETRYABLE), log, notified)  # type: ignore[arg-type]
    assert set(log.records) == {"ABCD23:high-t0:a:sms", "ABCD23:high-t0:b:sms"}
    assert notified.entries["ABCD23"].people == ["a"]  # b was not reached yet


async def test_fallback_makes_follow_ups_durable_first_and_only_for_failures() -> None:
    emitted = Emitted()
    ok = attempted("a", Outcome.DELIVERED)
    assert await fallback(ok, emitted, T0) is ok and emitted.records == []  # type: ignore[arg-type]
    failed = attempted("a", Outcome.PERMANENT)
    done = await fallback(failed, emitted, T0)  # type: ignore[arg-type]
    assert done.fallback_done and len(emitted.of(Alert)) == 2
    assert await fallback(done, emitted, T0) is done and len(emitted.records) == 2
