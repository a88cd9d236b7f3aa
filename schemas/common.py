"""Shared field types and enums used by every schema module."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

# Child references are opaque case-system identifiers. Keeping them to a safe alphabet means
# they can be used as Kafka keys, URL path segments and log values without escaping.
#
# A reference means something only inside the local authority whose case system issued it
# (two councils' systems can both have a child 10234), so a child is identified by authority
# and reference: ``<reference>@<authority>``, written without the suffix for the deployment's
# default authority (rota.yaml ``default_local_authority``). The API adds the suffix from the
# caller's key; producers writing straight to Kafka write it themselves. docs/api.md.
AUTHORITY_SEPARATOR: Final = "@"
_REF = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
ChildRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=129,
        pattern=rf"^{_REF}(@{_REF})?$",
        description=(
            "Case-system reference of the child (not a name), suffixed '@<local authority>' "
            "unless the child belongs to the deployment's default authority."
        ),
        examples=["C123", "10234@LA-OTHER"],
    ),
]


def split_child_ref(child_ref: str) -> tuple[str, str | None]:
    """(the authority's own reference, the authority named in it or None)."""
    ref, sep, authority = child_ref.partition(AUTHORITY_SEPARATOR)
    return ref, (authority if sep else None)


def scoped_child_ref(ref: str, authority: str, default_authority: str) -> str:
    """The one spelling of a child of ``authority``: suffixed unless it is the default."""
    return ref if authority == default_authority else f"{ref}{AUTHORITY_SEPARATOR}{authority}"


def authority_of(child_ref: str, default_authority: str) -> str:
    return split_child_ref(child_ref)[1] or default_authority


EpisodeCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z0-9]{4,12}$",
        description="Short code of an episode, quoted in SMS replies ('ACK <code>').",
        examples=["K7Q2MD"],
    ),
]
ShortText = Annotated[str, Field(max_length=2000)]

# Plausibility bounds for every instant and date that crosses the edge. Nothing the service
# records happened before 1900, and a far-past or far-future value overflows time-zone
# arithmetic downstream (year 1 minus an offset is not a datetime): one such value used to
# crash dispatch and cost every other alert in its batch. The upper bound is only a static
# ceiling; "not later than now plus the clock-skew tolerance" needs a clock and is checked where
# events are decoded (streams/kafka/decode.py) and accepted (the API).
EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """UTC on the wire and in state, whatever offset the producer used. The one ``UTC`` tzinfo
    object also makes every later comparison cheap: two datetimes sharing a tzinfo compare
    field by field, two with different ones call ``utcoffset`` on both (the bounds are
    checked natively by pydantic-core before this runs)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _plausible_day(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be on or after 1900-01-01 and before 2200-01-01")
    return value


Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST), AfterValidator(_utc)]
Day = Annotated[date, AfterValidator(_plausible_day)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Category(StrEnum):
    """DfE categories: whereabouts unknown (M) versus known but unauthorised (A)."""

    MISSING = "missing"
    AWAY = "away"

    @property
    def code(self) -> str:
        """The SSDA903 MISSING column value."""
        return "M" if self is Category.MISSING else "A"


class Tier(StrEnum):
    STANDARD = "standard"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]


_TIER_RANK = {Tier.STANDARD: 0, Tier.MEDIUM: 1, Tier.HIGH: 2}


class RiskFlag(StrEnum):
    """Philomena-style risk flags; which of them raise the tier is decided by config/risk.yaml."""

    TRAFFICKING_SUSPECTED = "trafficking_suspected"
    TRAFFICKING_IDENTIFIED = "trafficking_identified"
    NRM_REFERRAL = "nrm_referral"
    CSE = "child_sexual_exploitation"
    CCE = "child_criminal_exploitation"
    COUNTY_LINES = "county_lines"
    UASC = "unaccompanied_asylum_seeking"
    URGENT_MEDICAL_NEED = "urgent_medical_need"
    IMMEDIATE_DANGER = "immediate_danger"
    OTHER_CONCERNS = "other_concerns"


class Reporter(BaseModel):
    """Who told us: a role and organisation, never a personal name in the event stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["carer", "residential_staff", "social_worker", "police", "case_system", "other"]
    organisation: str | None = Field(default=None, max_length=120)


class Envelope(BaseModel):
    """Fields every event and record carries, so consumers can dedupe, order and route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: Instant = Field(
        description="When it happened in the world (timezone-aware ISO 8601)."
    )
    child_ref: ChildRef


# Why a false report was withdrawn (issue 14): a code, so records and messages hold no free text.
CancelReason = Literal["not_missing", "duplicate_report", "wrong_child", "other"]
