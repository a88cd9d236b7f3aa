"""The duty desk's read model of an episode (issue 14): what a duty team looks at, kept in
Kafka so every worker can answer from memory (docs/duty-desk.md). Pure: a child's state in, one
summary per episode the batch touched out; the engine writes them to the compacted
``episode-views`` table and every worker's API reads that table.

A summary carries no personal data beyond what the episode API already shows (reference,
initials, authority): never names, addresses or notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from config.policy import Policy
from schemas.common import CancelReason, Category, Tier, authority_of
from schemas.records import EpisodeRecord
from streams.episodes import ladder as timing
from streams.episodes.state import NO_EPISODE, ChildState, Episode, status_of


class EpisodeSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episode_code: str
    child_ref: str
    local_authority: str
    initials: str | None
    status: Literal["open", "closed", "cancelled"]
    cancel_reason: CancelReason | None = None
    tier: Tier
    category: Category
    last_seen_at: datetime
    reported_at: datetime
    returned_at: datetime | None
    acknowledged_by: dict[str, datetime]
    next_step: str | None
    next_due_at: datetime | None
    late: bool
    updated_at: datetime


def summarise(state: ChildState, episode: Episode, policy: Policy, now: datetime) -> EpisodeSummary:
    profile = state.profile
    authority = (
        profile.local_authority
        if profile
        else authority_of(state.child_ref, policy.rota.default_local_authority)
    )
    step, due = _next_step(episode, policy)
    return EpisodeSummary(
        episode_code=episode.code,
        child_ref=state.child_ref,
        local_authority=authority,
        initials=profile.initials if profile else None,
        status=status_of(episode),
        cancel_reason=episode.cancel_reason,
        tier=episode.tier,
        category=episode.category,
        last_seen_at=episode.last_seen_at,
        reported_at=episode.reported_at,
        returned_at=episode.returned_at,
        acknowledged_by=dict(episode.acknowledged_by),
        next_step=step,
        next_due_at=due,
        late=episode.late,
        updated_at=now,
    )


def _next_step(episode: Episode, policy: Policy) -> tuple[str | None, datetime | None]:
    """The next ladder step (open) or interview timer (closed) and when it falls due."""
    escalation = policy.escalation
    if episode.cancelled_at is not None:
        return None, None
    if episode.closed_at is not None:
        timers = [(rhi.step_id, due) for rhi, due in timing.pending_rhi(episode, escalation)]
        return min(timers, key=lambda pair: pair[1], default=(None, None))
    ladder = timing.ladder_for(episode, escalation)
    steps = timing.pending_steps(ladder, episode)
    options = [(s.id, timing.step_due_at(episode, s)) for s in steps]
    renotify = timing.renotify_due_at(ladder, episode)
    if renotify is not None and episode.renotify is not None:
        # The ladder may be spent while its last unacknowledged step repeats: that is next.
        options.append((f"{episode.renotify.step_id}+r{episode.renotify.count + 1}", renotify))
    return min(options, key=lambda pair: pair[1], default=(None, None))


def codes_of(state: ChildState | None) -> set[str]:
    """The episodes a state holds, taken before an apply (the engine's apply reuses the state
    object, so the old one is gone afterwards)."""
    if state is None:
        return set()
    return {e.code for e in _all(state)}


def touched(
    before: set[str], new: ChildState, records: Iterable[EpisodeRecord]
) -> tuple[list[Episode], list[str]]:
    """The episodes whose summary an event may have changed, and the codes that left the
    child's state (their summaries are deleted). Every change to an episode is recorded under
    its code, so an event with no record for an episode (a check-in, a timer that fired
    nothing: most events) writes no summary."""
    named = {r.episode_code for r in records if r.episode_code != NO_EPISODE}
    known = {e.code: e for e in _all(new)}
    changed = [e for code, e in known.items() if code in named]
    return changed, sorted(before - set(known))


def _all(state: ChildState) -> list[Episode]:
    opened = [state.open_episode] if state.open_episode else []
    return [*state.recent_episodes, *state.cancelled_episodes, *opened]


SortKey = tuple[int, int, datetime, str]


def sort_key(summary: EpisodeSummary) -> SortKey:
    """Open first, then high risk first, then the longest missing (earliest last seen)."""
    return (
        0 if summary.status == "open" else 1,
        -summary.tier.rank,
        summary.last_seen_at,
        summary.episode_code,
    )
