"""The retention sweep's choice (streams/dispatch/retention.py): delivery records a retention
after the episode closed, the who-was-told entry only once none of its records is left, and
only for this worker's partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts import notified as notified_codec
from alerts.delivery_log import after_attempt, encode
from alerts.notifiers.base import Outcome, SendResult
from alerts.retry import RetryPolicy
from schemas.alerts import Alert, AlertKind, Channel, Notification
from schemas.common import Category, Tier
from streams.dispatch.retention import retention_requests
from streams.kafka.partitioning import partition_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEEP = timedelta(days=90)


def record(code: str, child: str, step: str, at: datetime) -> tuple[bytes, bytes]:
    alert = Alert(
        occurred_at=at,
        child_ref=child,
        alert_id=f"{code}:{step}",
        kind=AlertKind.ESCALATION,
        episode_code=code,
        step_id=step,
        tier=Tier.HIGH,
        category=Category.MISSING,
        channels=(Channel.SMS,),
        template="escalation",
        last_seen_at=at,
        reported_at=at,
    )
    nid = f"{code}:{step}:pl-1:sms"
    note = Notification(
        occurred_at=at,
        child_ref=child,
        notification_id=nid,
        alert_id=alert.alert_id,
        episode_code=code,
        recipient_id="pl-1",
        channel=Channel.SMS,
        address="+447700900105",
        body="x",
    )
    sent = after_attempt(
        note,
        alert,
        None,
        SendResult(Outcome.DELIVERED),
        now=at,
        policy=RetryPolicy(),
        rng=None,  # type: ignore[arg-type]
    )
    return nid.encode(), encode(sent)


def told(closed: datetime | None) -> bytes:
    return notified_codec.encode(notified_codec.Notified(["pl-1"], closed))


def sweep(
    deliveries: list[tuple[bytes, bytes]],
    notified: dict[bytes, bytes],
    now: datetime,
    child: bytes = b"C1",
) -> list[str]:
    out = retention_requests(
        deliveries,
        notified.items(),
        {b"AAAA22": child}.get,
        owned={partition_for(b"C1", 4)},
        partitions=4,
        now=now,
        retention=KEEP,
        limit=100,
    )
    return [r.notification_id or f"episode {r.episode_code}" for r in out]


def test_open_episodes_keep_everything() -> None:
    recs = [record("AAAA22", "C1", "high-t0", T0)]
    assert sweep(recs, {b"AAAA22": told(None)}, T0 + timedelta(days=400)) == []


def test_records_go_first_then_the_entry() -> None:
    closed = T0 + timedelta(days=1)
    recs = [
        record("AAAA22", "C1", "high-t0", T0),
        record("AAAA22", "C1", "rhi-reminder", T0 + timedelta(days=3)),
    ]
    notified = {b"AAAA22": told(closed)}
    assert sweep(recs, notified, closed + KEEP - timedelta(seconds=1)) == []
    # The first record's time has come; the reminder's (sent later) has not: the entry stays.
    assert sweep(recs, notified, closed + KEEP) == ["AAAA22:high-t0:pl-1:sms"]
    later = T0 + timedelta(days=3) + KEEP
    assert sweep(recs, notified, later) == [
        "AAAA22:high-t0:pl-1:sms",
        "AAAA22:rhi-reminder:pl-1:sms",
    ]
    assert sweep([], notified, later) == ["episode AAAA22"]


def test_other_workers_partitions_are_left_to_them() -> None:
    other = next(
        c
        for c in (f"X{i}" for i in range(50))
        if partition_for(c.encode(), 4) != partition_for(b"C1", 4)
    )
    recs = [record("AAAA22", other, "high-t0", T0)]
    assert sweep(recs, {b"AAAA22": told(T0)}, T0 + KEEP * 2, other.encode()) == []
    assert sweep([], {b"AAAA22": told(T0)}, T0 + KEEP * 2, other.encode()) == []
