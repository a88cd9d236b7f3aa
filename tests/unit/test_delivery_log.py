from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts.delivery_log import (
    RANK,
    after_attempt,
    apply_receipt,
    decode,
    decode_header,
    encode,
    expires_at,
    fallback_alerts,
    needs_fallback,
)
from alerts.notifiers.base import Outcome, SendResult
from alerts.receipts import receipt_from_callback, signature_valid
from alerts.retry import RetryPolicy
from schemas.alerts import Alert, AlertKind, Channel, DeliveryStatus, Notification
from schemas.common import Category, Tier

T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
POLICY = RetryPolicy(initial=timedelta(seconds=1), deadline=timedelta(seconds=30), jitter=0)
ALERT = Alert(
    occurred_at=T0,
    child_ref="C1",
    alert_id="ABCD23:high-t0",
    kind=AlertKind.ABSENCE_REPORTED,
    episode_code="ABCD23",
    step_id="high-t0",
    tier=Tier.HIGH,
    category=Category.MISSING,
    roles=("police_liaison",),
    channels=(Channel.SMS,),
    template="absence_reported",
    initials="JD",
    last_seen_at=T0,
    reported_at=T0,
)
SMS = Notification(
    occurred_at=T0,
    child_ref="C1",
    notification_id="ABCD23:high-t0:pl-1:sms",
    alert_id=ALERT.alert_id,
    episode_code="ABCD23",
    recipient_id="pl-1",
    channel=Channel.SMS,
    address="+447700900105",
    body="text",
)


def attempt(result: SendResult, previous=None, now=T0):  # type: ignore[no-untyped-def]
    return after_attempt(SMS, ALERT, previous, result, now=now, policy=POLICY, rng=random.Random(0))


def test_accepted_sms_is_queued_with_provider_id() -> None:
    d = attempt(SendResult(Outcome.DELIVERED, provider_message_id="SM1"))
    assert (d.status, d.provider_message_id, d.attempts) == ("queued", "SM1", 1)
    assert not needs_fallback(d)


def test_retryable_failure_schedules_a_retry_until_the_deadline() -> None:
    d = attempt(SendResult(Outcome.RETRYABLE, error="twilio http 500"))
    assert d.status == "retrying" and d.next_attempt_at == T0 + timedelta(seconds=1)
    late = attempt(
        SendResult(Outcome.RETRYABLE, error="timeout"), d, now=T0 + timedelta(seconds=40)
    )
    assert late.status == "failed" and late.last_error == "deadline passed: timeout"
    assert needs_fallback(late) and late.attempts == 2


def test_permanent_failure_needs_fallback_once() -> None:
    d = attempt(SendResult(Outcome.PERMANENT, error="twilio 21211"))
    assert d.status == "failed" and needs_fallback(d)
    email, manager = fallback_alerts(d, T0)
    assert (
        email.channels == (Channel.EMAIL,) and email.recipients == ("pl-1",) and email.roles == ()
    )
    assert email.step_id == "high-t0"  # same step: an email already sent for it is not repeated
    assert manager.kind is AlertKind.DELIVERY_FAILED and manager.roles == ("team_manager",)
    assert manager.step_id == "delivery-failed-high-t0-pl-1-sms"
    assert len(fallback_alerts(d.model_copy(update={"alert": manager}), T0)) == 1  # no cascade
    assert not needs_fallback(d.model_copy(update={"fallback_done": True}))


@given(st.lists(st.sampled_from(sorted(RANK)), max_size=12))
def test_receipts_only_move_forward(statuses: list[str]) -> None:
    d = attempt(SendResult(Outcome.DELIVERED, provider_message_id="SM1"))
    for status in statuses:
        updated = apply_receipt(d, status, None, T0)
        if updated is not None:
            assert RANK[updated.status] > RANK[d.status]
            d = updated
    assert RANK[d.status] >= RANK["queued"]


def test_undelivered_receipt_triggers_fallback() -> None:
    d = attempt(SendResult(Outcome.DELIVERED, provider_message_id="SM1"))
    bad = apply_receipt(d, "undelivered", "30003", T0)
    assert bad is not None and needs_fallback(bad) and bad.last_error == "provider 30003"
    assert apply_receipt(bad, "delivered", None, T0) is None  # final is final


def test_table_encoding_round_trips_with_retry_header() -> None:
    d = attempt(SendResult(Outcome.RETRYABLE, error="x"))
    raw = encode(d)
    assert decode(raw) == d and decode_header(raw) == (d.next_attempt_at, "C1", d.updated_at)
    done = attempt(SendResult(Outcome.DELIVERED, provider_message_id="SM1"))
    assert decode_header(encode(done)) == (None, "C1", done.updated_at)


def test_records_expire_a_retention_after_the_later_of_update_and_close() -> None:
    keep = timedelta(days=90)
    assert expires_at(T0, None, keep) is None  # episode open: the duty team needs them
    assert expires_at(T0, T0 + timedelta(days=2), keep) == T0 + timedelta(days=92)
    # An RHI reminder sent after the close counts from its own send.
    assert expires_at(T0 + timedelta(days=3), T0, keep) == T0 + timedelta(days=93)


def test_status_callback_parsing_and_signature() -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    receipt = receipt_from_callback({"n": SMS.notification_id, "c": "C1"}, params, T0)
    assert receipt is not None and receipt.status is DeliveryStatus.UNDELIVERED
    assert receipt.error_code == "30003" and receipt.child_ref == "C1"
    assert receipt_from_callback({"n": "x", "c": "C1"}, {"MessageStatus": "read"}, T0) is None
    assert not signature_valid("token", "https://x/cb", params, "")
    assert not signature_valid("token", "https://x/cb", params, "bogus")
