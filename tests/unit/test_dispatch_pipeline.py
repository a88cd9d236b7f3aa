"""Dispatch's stages without a broker (streams/dispatch/pipeline.py against in-memory ports):
dedupe, isolation of every record and every message, a hung provider holding only its own
message, retries, receipts, fallback and retention."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.fanout import Links
from alerts.notifiers.base import Outcome, SendResult
from alerts.retry import RetryPolicy
from config import load_policy
from config.settings import POLICY_DIR
from schemas.alerts import (
    Alert,
    AlertKind,
    Channel,
    DeliveryReceipt,
    DeliveryStatus,
    RetentionDue,
    RetryDue,
)
from schemas.common import Category, Tier
from schemas.records import DeadLetter
from schemas.wire import dumps
from streams.dispatch.pipeline import Dispatcher
from streams.dispatch.ports import DispatchConfig
from streams.runtime.clock import ManualClock
from telemetry.metrics import Metrics
from tests.support.dispatch_ports import Emitted, Ports, ScriptedNotifier

POLICY = load_policy(POLICY_DIR)
NOW = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # Wednesday, office hours
CONFIG = DispatchConfig(
    links=Links("https://ma.example.org", b"secret"),
    retry=RetryPolicy(initial=timedelta(seconds=1), deadline=timedelta(seconds=30), jitter=0),
    retention=timedelta(days=90),
    concurrency=8,
    attempt_timeout=timedelta(seconds=5),
)


def alert(code: str = "ABCD23", child: str = "C1", **overrides: Any) -> Alert:
    fields: dict[str, Any] = dict(
        occurred_at=NOW,
        child_ref=child,
        alert_id=f"{code}:high-t0",
        kind=AlertKind.ABSENCE_REPORTED,
        episode_code=code,
        step_id="high-t0",
        tier=Tier.HIGH,
        category=Category.MISSING,
        roles=("duty_social_worker", "police_liaison"),
        channels=(Channel.SMS, Channel.EMAIL),
        template="absence_reported",
        local_authority="LA-EXAMPLE",
        police_force="FORCE-EXAMPLE",
        initials="JD",
        last_seen_at=NOW - timedelta(minutes=20),
        reported_at=NOW,
    )
    fields.update(overrides)
    return Alert.model_validate(fields)


class Rig:
    def __init__(self) -> None:
        self.sms, self.email = ScriptedNotifier("sms"), ScriptedNotifier("email")
        self.emitted = Emitted()
        self.clock = ManualClock(NOW)
        self.ports = Ports()
        self.dispatcher = Dispatcher(
            policy=POLICY,
            config=CONFIG,
            notifiers={Channel.SMS: self.sms, Channel.EMAIL: self.email},
            emit=self.emitted,
            clock=self.clock,
            metrics=Metrics(),
            rng=random.Random(0),
        )

    async def handle(self, value: bytes | None, key: bytes | None = b"C1") -> None:
        await self.dispatcher.handle(self.ports.item(value, key=key))

    def sent_ids(self) -> list[str]:
        return sorted(n.notification_id for n in [*self.sms.sent, *self.email.sent])

    def letters(self) -> list[DeadLetter]:
        return self.emitted.of(DeadLetter)


async def test_each_person_gets_each_channel_once_and_is_remembered() -> None:
    rig = Rig()
    await rig.handle(dumps(alert()))
    assert rig.sent_ids() == [
        "ABCD23:high-t0:dsw-day:email",
        "ABCD23:high-t0:dsw-day:sms",
        "ABCD23:high-t0:pl-1:email",
        "ABCD23:high-t0:pl-1:sms",
    ]
    assert {d.status for d in rig.ports.log.records.values()} == {"queued", "sent"}
    assert rig.ports.notified.entries["ABCD23"].people == ["dsw-day", "pl-1"]
    assert rig.ports.log.flushes == 4  # each record durable before its record is acknowledged
    await rig.handle(dumps(alert()))  # a replay after a crash
    assert len(rig.sent_ids()) == 4


async def test_a_replay_arriving_while_the_first_is_in_flight_sends_nothing() -> None:
    rig = Rig()
    rig.sms.script["pl-1"] = "hang"
    first = asyncio.create_task(rig.handle(dumps(alert())))
    await asyncio.sleep(0.01)
    await rig.handle(dumps(alert()))  # not waiting on the hang: nothing of it is its own
    rig.sms.release.set()
    await first
    assert len(rig.sent_ids()) == 4


async def test_a_hung_provider_request_holds_only_its_own_message() -> None:
    """Finding 8 of issue #10: dispatch awaited a whole batch, so one hang stopped all SMS."""
    rig = Rig()
    rig.sms.script["pl-1"] = "hang"
    stuck = asyncio.create_task(rig.handle(dumps(alert("ABCD23", "C1"))))
    await asyncio.sleep(0.01)
    # Another child's alert, and the other messages of the same alert, go out meanwhile.
    other = alert("EFGH45", "C2", roles=("duty_social_worker",))
    await asyncio.wait_for(rig.handle(dumps(other), key=b"C2"), timeout=2)
    assert "EFGH45:high-t0:dsw-day:sms" in rig.ports.log.records
    assert "ABCD23:high-t0:dsw-day:sms" in rig.ports.log.records
    assert not stuck.done()
    rig.sms.release.set()
    await stuck
    assert rig.ports.log.records["ABCD23:high-t0:pl-1:sms"].status == "queued"


async def test_a_provider_that_ignores_its_timeout_is_cut_off_and_retried() -> None:
    rig = Rig()
    rig.sms.script["pl-1"] = "hang"
    config = DispatchConfig(**{**CONFIG.__dict__, "attempt_timeout": timedelta(seconds=0.05)})
    rig.dispatcher.config = config
    await asyncio.wait_for(rig.handle(dumps(alert())), timeout=2)
    parked = rig.ports.log.records["ABCD23:high-t0:pl-1:sms"]
    assert parked.status == "retrying" and parked.last_error == "TimeoutError"


async def test_far_past_alert_on_the_topic_is_dead_lettered_and_costs_no_one_else() -> None:
    """Finding 1 of issue #10: 0001-01-01 overflowed in the template and the batch was lost."""
    rig = Rig()
    hostile = json.loads(dumps(alert("ZZZZ99", "C9")))
    hostile["last_seen_at"] = "0001-01-01T00:00:00Z"
    await rig.handle(json.dumps(hostile).encode(), key=b"C9")
    await rig.handle(dumps(alert()))
    assert len(rig.sent_ids()) == 4 and not any("ZZZZ99" in i for i in rig.sent_ids())
    (letter,) = rig.letters()
    assert letter.reason == "invalid_dispatch_input"
    assert "alert.last_seen_at" in {e["field"] for e in letter.errors}


async def test_one_message_failing_to_record_is_dead_lettered_alone() -> None:
    rig = Rig()
    rig.ports.log.fail_put_for.add("ABCD23:high-t0:pl-1:email")
    await rig.handle(dumps(alert()))
    assert len(rig.ports.log.records) == 3
    (letter,) = rig.letters()
    assert letter.reason == "dispatch_error"
    assert letter.errors == [
        {"field": "notification.ABCD23:high-t0:pl-1:email", "message": "OSError"}
    ]


async def test_a_notifier_that_raises_is_a_retryable_attempt() -> None:
    rig = Rig()
    rig.email.script["dsw-day"] = RuntimeError("bug in a notifier")
    await rig.handle(dumps(alert()))
    parked = rig.ports.log.records["ABCD23:high-t0:dsw-day:email"]
    assert parked.status == "retrying" and parked.last_error == "RuntimeError"
    rig.email.script.clear()
    rig.clock.advance(timedelta(seconds=2))
    due = RetryDue(
        occurred_at=rig.clock.now(),
        child_ref="C1",
        notification_id=parked.notification.notification_id,
        due_at=rig.clock.now(),
    )
    await rig.handle(dumps(due))
    assert rig.ports.log.records[parked.notification.notification_id].status == "sent"
    await rig.handle(dumps(due))  # a second RetryDue: the record is no longer retrying
    assert [n.recipient_id for n in rig.email.sent].count("dsw-day") == 2


async def test_permanent_failure_makes_follow_ups_durable_before_recording_them() -> None:
    rig = Rig()
    rig.sms.script["pl-1"] = SendResult(Outcome.PERMANENT, error="twilio 21211")
    await rig.handle(dumps(alert()))
    failed = rig.ports.log.records["ABCD23:high-t0:pl-1:sms"]
    assert failed.status == "failed" and failed.fallback_done
    follow = rig.emitted.of(Alert)
    assert [(a.step_id, a.recipients, a.channels) for a in follow] == [
        ("high-t0", ("pl-1",), (Channel.EMAIL,)),
        ("delivery-failed-high-t0-pl-1-sms", (), (Channel.EMAIL, Channel.SMS)),
    ]


async def test_a_receipt_waits_for_the_attempt_in_flight() -> None:
    rig = Rig()
    rig.sms.script["pl-1"] = "hang"
    sending = asyncio.create_task(rig.handle(dumps(alert())))
    await asyncio.sleep(0.01)
    receipt = DeliveryReceipt(
        occurred_at=NOW,
        child_ref="C1",
        notification_id="ABCD23:high-t0:pl-1:sms",
        status=DeliveryStatus.DELIVERED,
    )
    receiving = asyncio.create_task(rig.handle(dumps(receipt)))
    await asyncio.sleep(0.01)
    assert not receiving.done()  # it would find no record and be dropped
    rig.sms.release.set()
    await asyncio.gather(sending, receiving)
    assert rig.ports.log.records["ABCD23:high-t0:pl-1:sms"].status == "delivered"


async def test_records_outlive_the_episode_by_the_retention_then_go() -> None:
    rig = Rig()
    await rig.handle(dumps(alert()))
    nid = "ABCD23:high-t0:pl-1:sms"
    due = RetentionDue(occurred_at=NOW, child_ref="C1", notification_id=nid)
    rig.clock.advance(timedelta(days=200))
    await rig.handle(dumps(due))
    assert nid in rig.ports.log.records  # the episode is still open: kept
    returned = alert(
        alert_id="ABCD23:returned",
        step_id="returned",
        kind=AlertKind.RETURNED,
        template="returned",
        occurred_at=rig.clock.now(),
    )
    await rig.handle(dumps(returned))
    assert rig.ports.notified.closed_at("ABCD23") == rig.clock.now()
    rig.clock.advance(timedelta(days=89))
    await rig.handle(dumps(due))
    assert nid in rig.ports.log.records
    rig.clock.advance(timedelta(days=2))
    await rig.handle(dumps(due))
    assert nid not in rig.ports.log.records
    # The who-was-told entry goes only when asked for it (once no record of it is left).
    assert "ABCD23" in rig.ports.notified.entries
    forget = RetentionDue(occurred_at=NOW, child_ref="C1", episode_code="ABCD23")
    await rig.handle(dumps(forget))
    assert "ABCD23" not in rig.ports.notified.entries


# ------------------------------------------------------------------ property: isolation

GOOD = [alert(f"GOOD{i}2", f"G{i}", roles=("duty_social_worker",)) for i in range(3)]

hostile_values = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 400).map(lambda n: b"[" * n + b"]" * n),
    st.builds(
        lambda when, size, initials: json.dumps(
            {
                **json.loads(dumps(alert("BADX99", "B1"))),
                "last_seen_at": when,
                "template": "x" * size,
                "initials": initials,
            }
        ).encode(),
        st.sampled_from(
            ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1899-12-31T23:00:00-01:00", "x"]
        ),
        st.integers(0, 200),
        st.text(max_size=6),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_values, max_size=6), st.randoms(use_true_random=False))
def test_no_input_changes_another_alerts_outcome(hostile: list[bytes], rnd: random.Random) -> None:
    async def run(values: list[bytes]) -> dict[str, str]:
        rig = Rig()
        await asyncio.gather(*(rig.handle(v) for v in values))
        return {nid: d.status for nid, d in rig.ports.log.records.items() if nid.startswith("GOOD")}

    alone = asyncio.run(run([dumps(a) for a in GOOD]))
    mixed = [dumps(a) for a in GOOD] + hostile
    rnd.shuffle(mixed)
    assert asyncio.run(run(mixed)) == alone
    assert len(alone) == 6


async def test_a_record_cancelled_before_its_attempts_leaves_no_claim_behind() -> None:
    """A claim whose attempt never started (the record's task cancelled by a rebalance or a
    shutdown in between) would make every replay skip the message as 'in flight'."""
    rig = Rig()
    first = asyncio.create_task(rig.handle(dumps(alert())))
    await asyncio.sleep(0)  # claimed, yielding before the attempts start
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert rig.sent_ids() == []
    await rig.handle(dumps(alert()))  # the replay after the partition moves back
    assert len(rig.sent_ids()) == 4
