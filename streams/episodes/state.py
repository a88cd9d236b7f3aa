"""State kept per child in the episodes table, and the effects an event produces.

Stored in the table as ``model_dump(mode="json")`` (JSON-ready dicts), per the Faust pitfall that
pydantic models are not faust.Records. Everything here must survive that round trip unchanged,
and stay small: the table holds one of these per child for years.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from schemas.alerts import Alert, Channel
from schemas.common import CancelReason, Category, RiskFlag, Tier
from schemas.events import ChildProfile
from schemas.records import EpisodeRecord

# Codes avoid 0/O and 1/I so they survive being read out over a phone.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6

# Records about an event that names no episode still need a valid code. "NONE" matches the
# EpisodeCode pattern but can never be generated (4 letters, and 'O' is not in the alphabet).
NO_EPISODE: Final = "NONE"

# Bounds that keep one child's state small however long the child is known to the service.
# Replays after a crash or a producer retry arrive within seconds or minutes; 64 ids cover that
# many times over while keeping every stored state small (it is rewritten on every event).
SEEN_EVENT_IDS_CAP: Final = 64
RECENT_EPISODES_CAP: Final = 32
ACKNOWLEDGERS_CAP: Final = 16
HELD_RETURNS_CAP: Final = 8
FACTS_CAP: Final = 16

# How late information may arrive and still be placed by when it happened (docs/episode-engine.md
# "Late and out-of-order information"): a return that fits no known episode is held this long
# for the absence it ends.
LATENESS_BOUND: Final = timedelta(days=7)


def seen_key(event_id: UUID) -> str:
    """64 bits of the event id: a collision within one child's 64-id window is negligible
    (~2^-52), and the state stays a few hundred bytes instead of kilobytes."""
    return event_id.hex[:16]


def episode_code_for(child_ref: str, opening_event_id: UUID) -> str:
    """Deterministic, so replaying the opening event after a crash yields the same episode."""
    digest = hashlib.sha256(f"{child_ref}:{opening_event_id}".encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        number, idx = divmod(number, len(_CODE_ALPHABET))
        chars.append(_CODE_ALPHABET[idx])
    return "".join(chars)


class Renotify(BaseModel):
    """The unacknowledged step being repeated, copied so a policy reload cannot orphan it."""

    model_config = ConfigDict(extra="forbid")

    step_id: str
    roles: tuple[str, ...]
    channels: tuple[Channel, ...]
    template: str
    base_at: datetime = Field(description="Last time these roles were told; the interval counts")
    count: int = Field(default=0, ge=0, description="Re-notifies of this step sent so far.")


class Fact(BaseModel):
    """One absence report or update of an episode, kept so the episode can be re-derived when
    information arrives out of order: its start is the earliest last-seen of its reports, its
    category the latest one stated, and a return that turns out to lie between two reports
    splits it (streams/episodes/timeline.py)."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    at: datetime = Field(description="When it was reported (the event's occurred_at).")
    last_seen_at: datetime | None = Field(default=None, description="Absence reports only.")
    category: Category | None = None
    flags: frozenset[RiskFlag] = frozenset()
    immediate_danger: bool = False


class Episode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    opened_by_event: UUID
    reported_at: datetime
    last_seen_at: datetime = Field(description="Ladder clock base; only ever moves earlier.")
    category: Category
    tier: Tier = Field(description="Tier the ladder runs on: the highest assessed while open.")
    assessed_tier: Tier | None = Field(default=None, description="The latest assessment.")
    flags: frozenset[RiskFlag] = frozenset()
    immediate_danger: bool = False
    profile_missing: bool = False
    fired: dict[str, datetime] = Field(
        default_factory=dict,
        description="step id -> fired at, for every alert of the episode except re-notifies.",
    )
    notified_roles: list[str] = Field(
        default_factory=list, description="Every role told so far, in first-told order."
    )
    renotify: Renotify | None = None
    acknowledged_by: dict[str, datetime] = Field(default_factory=dict)
    closed_at: datetime | None = None
    returned_at: datetime | None = None
    returned_how: Literal["returned", "found"] | None = None
    rhi_offered_on: date | None = None
    rhi_accepted: bool | None = None
    late: bool = Field(
        default=False,
        description="Recorded after the child was known to be back: no ladder, one notice.",
    )
    cancelled_at: datetime | None = Field(
        default=None, description="A false report withdrawn (issue 14): no period, no timers."
    )
    cancel_reason: CancelReason | None = None
    facts: list[Fact] = Field(
        default_factory=list,
        description="The reports and updates it is made of, by when they happened (event time).",
    )

    @property
    def acknowledged(self) -> bool:
        return bool(self.acknowledged_by)


def status_of(episode: Episode) -> Literal["open", "closed", "cancelled"]:
    if episode.cancelled_at is not None:
        return "cancelled"
    return "open" if episode.closed_at is None else "closed"


class HeldReturn(BaseModel):
    """A return that arrived before the absence it ends: kept until that absence arrives (or
    the lateness bound passes), so the episode still closes at the right time."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    episode_code: str | None
    returned_at: datetime
    how: Literal["returned", "found"]
    reporter_role: str
    held_at: datetime


class ChildState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child_ref: str
    profile: ChildProfile | None = None
    last_seen_at: datetime | None = None
    open_episode: Episode | None = None
    recent_episodes: list[Episode] = Field(
        default_factory=list, description="Closed episodes kept for repeat rules and RHI timers."
    )
    seen_event_ids: list[str] = Field(
        default_factory=list,
        description="Bounded window of processed event ids (seen_key form), for dedupe.",
    )
    held_returns: list[HeldReturn] = Field(default_factory=list)
    cancelled_episodes: list[Episode] = Field(
        default_factory=list,
        description="False reports withdrawn: out of every rule, kept to answer lookups.",
    )

    def closed_episode(self, code: str) -> Episode | None:
        return next((e for e in self.recent_episodes if e.code == code), None)

    def cancelled_episode(self, code: str) -> Episode | None:
        return next((e for e in self.cancelled_episodes if e.code == code), None)

    def last_closed(self) -> Episode | None:
        """The episode that ended latest: new absences may not start before its return."""
        closed = [e for e in self.recent_episodes if e.returned_at is not None]
        return max(closed, key=lambda e: (e.returned_at, e.code), default=None)


@dataclass(slots=True)
class Effects:
    """What one event asks the outside world to do. A plain dataclass: it is built for every
    event and never serialised as a whole, so pydantic validation would be pure cost."""

    alerts: list[Alert] = field(default_factory=list)
    records: list[EpisodeRecord] = field(default_factory=list)


def age_on(dob: date, day: date) -> int:
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
