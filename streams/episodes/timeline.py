"""A child's episodes in event time: which episode a moment belongs to, and an episode re-derived
from its facts. Pure queries and small in-place derivations; machine.py and late.py decide what
to do with the answers (the rules: docs/episode-engine.md "Late and out-of-order information").

An episode is the reports and updates it is made of (``Episode.facts``) and, once known, a
return. Its start is the earliest last-seen time its reports give (never before the previous
episode's return), its category the one stated latest by when it was stated, its flags all
that were reported. Deriving these from the facts, not from arrival order, is what makes the
same events in any order give the same episode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas.common import Category
from streams.episodes.state import FACTS_CAP, ChildState, Episode, Fact, HeldReturn


def episodes(state: ChildState) -> list[Episode]:
    """Every episode the state knows, in event-time order (the open one last)."""
    known = sorted(state.recent_episodes, key=lambda e: (e.last_seen_at, e.code))
    return [*known, state.open_episode] if state.open_episode is not None else known


def containing(state: ChildState, at: datetime) -> Episode | None:
    """The episode the child was away in at ``at``: from its start until its return (the open
    episode has no end yet)."""
    for episode in episodes(state):
        end = episode.returned_at
        if episode.last_seen_at <= at and (end is None or at < end):
            return episode
    return None


def next_after(state: ChildState, at: datetime) -> Episode | None:
    """The first episode starting after ``at``."""
    return next((e for e in episodes(state) if e.last_seen_at > at), None)


def previous_end(
    state: ChildState, at: datetime, *, besides: Episode | None = None
) -> datetime | None:
    """The latest return at or before ``at``: no episode may start before it (SSDA903 periods
    of one child never overlap)."""
    ends = [
        e.returned_at
        for e in state.recent_episodes
        if e is not besides and e.returned_at is not None and e.returned_at <= at
    ]
    return max(ends, default=None)


def held_return_for(
    state: ChildState, start: datetime, limit: datetime | None, code: str | None
) -> HeldReturn | None:
    """The earliest held return that can end an episode starting at ``start``: at or after it,
    not after ``limit`` (the next episode's start), naming no episode or this one."""
    fitting = [
        h
        for h in state.held_returns
        if h.episode_code in (None, code)
        and h.returned_at >= start
        and (limit is None or h.returned_at <= limit)
    ]
    return min(fitting, key=lambda h: (h.returned_at, str(h.event_id)), default=None)


def facts_of(episode: Episode) -> list[Fact]:
    """An episode's facts; one stored before facts were kept stands for its opening report."""
    if episode.facts:
        return list(episode.facts)
    return [
        Fact(
            event_id=episode.opened_by_event,
            at=episode.reported_at,
            last_seen_at=episode.last_seen_at,
            category=episode.category,
            flags=episode.flags,
            immediate_danger=episode.immediate_danger,
        )
    ]


def with_fact(episode: Episode, fact: Fact) -> list[Fact]:
    """The facts with ``fact`` added, in event-time order, bounded: the opening report and the
    latest ones are kept (a child's state is rewritten on every event)."""
    facts = sorted([*facts_of(episode), fact], key=_order)
    if len(facts) > FACTS_CAP:
        facts = [facts[0], *facts[-(FACTS_CAP - 1) :]]
    return facts


def split(facts: Iterable[Fact], at: datetime) -> tuple[list[Fact], list[Fact]] | None:
    """The facts before and from ``at`` when both hold a report: a return at ``at`` then lies
    between two absences, which were two episodes."""
    ordered = sorted(facts, key=_order)
    before = [f for f in ordered if f.at < at]
    after = [f for f in ordered if f.at >= at]
    if _reports(before) and _reports(after):
        return before, after
    return None


def derive(episode: Episode, facts: list[Fact], floor: datetime | None) -> bool:
    """Set the episode's start, category, flags and danger from ``facts``; True when the start
    was moved up to ``floor`` (the previous return)."""
    episode.facts = sorted(facts, key=_order)
    start = min(_reports(facts))
    adjusted = floor is not None and start < floor
    episode.last_seen_at = floor if floor is not None and adjusted else start
    episode.category = stated_category(facts) or episode.category
    episode.flags = frozenset().union(*(f.flags for f in facts))
    episode.immediate_danger = any(f.immediate_danger for f in facts)
    return adjusted


def stated_category(facts: Iterable[Fact]) -> Category | None:
    """The category stated latest by when it was stated, whatever order the facts came in."""
    stated = [f for f in sorted(facts, key=_order) if f.category is not None]
    return stated[-1].category if stated else None


def _reports(facts: Iterable[Fact]) -> list[datetime]:
    return [f.last_seen_at for f in facts if f.last_seen_at is not None]


def _order(fact: Fact) -> tuple[datetime, str]:
    return fact.at, str(fact.event_id)
