"""Builders for wire events, as an integrator would produce them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.common import Category, Reporter, RiskFlag
from schemas.events import AbsenceReported, Acknowledgement, ChildProfile, ReturnReported
from schemas.wire import dumps

CARER = Reporter(role="carer", organisation="Example House")


def now() -> datetime:
    return datetime.now(UTC)


def absence(
    child: str, *, flags: frozenset[RiskFlag] = frozenset(), seen_ago: timedelta = timedelta(0)
) -> AbsenceReported:
    at = now()
    return AbsenceReported(
        occurred_at=at,
        child_ref=child,
        last_seen_at=at - seen_ago,
        category=Category.MISSING,
        reporter=CARER,
        reported_flags=flags,
    )


def profile(child: str, *, initials: str = "JD", full_name: str | None = None) -> ChildProfile:
    return ChildProfile(
        occurred_at=now(),
        child_ref=child,
        initials=initials,
        date_of_birth=datetime(2010, 6, 1).date(),
        local_authority="LA-EXAMPLE",
        police_force="FORCE-EXAMPLE",
        full_name=full_name,
    )


def ack(child: str, code: str, recipient: str = "dsw-day") -> Acknowledgement:
    return Acknowledgement(
        occurred_at=now(), child_ref=child, episode_code=code, recipient_id=recipient, via="api"
    )


def returned(child: str, code: str | None = None) -> ReturnReported:
    at = now()
    return ReturnReported(
        occurred_at=at, child_ref=child, returned_at=at, reporter=CARER, episode_code=code
    )


def record(
    event: AbsenceReported | Acknowledgement | ChildProfile | ReturnReported,
) -> tuple[bytes, bytes]:
    return event.child_ref.encode(), dumps(event)
