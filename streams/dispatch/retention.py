"""Which records the retention sweep asks dispatch to delete. Pure: tables in, requests out.

Delivery records hold phone numbers, email addresses and message bodies; the who-was-told
entry per episode holds staff ids. Both are deleted a retention period after the episode
closed (docs/privacy.md). The who-was-told entry carries the close time every delivery record
of the episode needs to expire, so it is asked for only once none of them is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from alerts import notified as notified_codec
from alerts.delivery_log import decode_header, expires_at
from schemas.alerts import RetentionDue
from streams.kafka.partitioning import partition_for
from telemetry.logging import episode_code_of


def retention_requests(
    deliveries: Iterable[tuple[bytes, bytes]],
    notified: Iterable[tuple[bytes, bytes]],
    child_of_code: Callable[[bytes], bytes | None],
    *,
    owned: set[int],
    partitions: int,
    now: datetime,
    retention: timedelta,
    limit: int,
) -> list[RetentionDue]:
    """Requests for this worker's partitions (``owned``), at most ``limit`` per sweep."""
    closed_at: dict[str, datetime | None] = {
        bytes(k).decode(): notified_codec.decode(v).closed_at for k, v in notified
    }
    due: list[RetentionDue] = []
    live: set[str] = set()  # episodes with a delivery record still stored
    for key, value in deliveries:
        header = decode_header(value)
        if partition_for(header.child_ref.encode(), partitions) not in owned:
            continue
        nid = bytes(key).decode()
        code = episode_code_of(nid)
        closed = closed_at.get(code) if code else None
        expiry = expires_at(header.updated_at or now, closed, retention)
        if expiry is not None and expiry <= now and len(due) < limit:
            due.append(
                RetentionDue(occurred_at=now, child_ref=header.child_ref, notification_id=nid)
            )
        if code is not None:
            live.add(code)  # its entry waits for a sweep that finds no record left
    for code, closed in closed_at.items():
        if code in live or closed is None or closed + retention > now or len(due) >= limit:
            continue
        child = child_of_code(code.encode())
        if child is None or partition_for(bytes(child), partitions) not in owned:
            continue
        due.append(
            RetentionDue(occurred_at=now, child_ref=bytes(child).decode(), episode_code=code)
        )
    return due
