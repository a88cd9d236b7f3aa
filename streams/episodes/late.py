"""Information that arrives late or out of order: placed by when it happened, never escalated
for a child known to be back. The rules and their reasons: docs/episode-engine.md "Late and
out-of-order information"; the event-time queries: streams/episodes/timeline.py.

- A report or update about a closed episode amends it (an ``amended`` record), with no alert.
- A return that fits no known episode is held for the absence it ends (``return_held``); held
  returns expire after the lateness bound (``ignored``, ``return_without_absence``).
- An absence ended by a held return is recorded closed, as is a part of an episode split by a
  return that lies between two of its reports: one ``late_report`` notice each, no ladder.
- An imported past episode (``missing-alerts import ssda903``) is recorded closed with no
  alert at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, NamedTuple
from uuid import uuid5
from zoneinfo import ZoneInfo

from schemas.alerts import AlertKind
from schemas.common import Category, Tier
from schemas.events import HistoricEpisode, ReturnReported
from streams.episodes import ladder as timing
from streams.episodes import timeline
from streams.episodes.run import Run, iso
from streams.episodes.state import (
    HELD_RETURNS_CAP,
    LATENESS_BOUND,
    NO_EPISODE,
    Episode,
    Fact,
    HeldReturn,
    episode_code_for,
)

LATE_REPORT_STEP_ID = "late-report"
LONDON = ZoneInfo("Europe/London")
MINUTE = timedelta(minutes=1)
How = Literal["returned", "found"]


class Built(NamedTuple):
    episode: Episode
    adjusted: bool  # the start was moved up to the previous return
    reasons: tuple[str, ...]  # of the risk assessment


def build(
    run: Run, facts: list[Fact], *, not_before: datetime | None = None, late: bool = False
) -> Built:
    """A new episode made of ``facts`` (at least one report), its code derived from its first
    report so a replay finds the same one."""
    state = run.state
    first = min(
        (f for f in facts if f.last_seen_at is not None), key=lambda f: (f.at, str(f.event_id))
    )
    code = episode_code_for(state.child_ref, first.event_id)
    if code in {e.code for e in timeline.episodes(state)}:  # the part of a split that moves
        code = episode_code_for(state.child_ref, uuid5(first.event_id, "split"))
    episode = Episode(
        code=code,
        opened_by_event=first.event_id,
        reported_at=first.at,
        last_seen_at=first.last_seen_at or first.at,
        category=first.category or Category.MISSING,
        tier=Tier.STANDARD,  # assessed below, once the facts are in
        late=late,
        profile_missing=state.profile is None,
    )
    floors = [t for t in (timeline.previous_end(state, episode.last_seen_at), not_before) if t]
    adjusted = timeline.derive(episode, facts, max(floors, default=None))
    assessment = run.assess(episode.flags, episode.immediate_danger, episode.last_seen_at)
    episode.tier = episode.assessed_tier = assessment.tier
    return Built(episode, adjusted, tuple(assessment.reasons))


def opened_detail(built: Built, reporter_role: str) -> dict[str, Any]:
    episode = built.episode
    return {
        "tier": episode.tier.value,
        "reasons": list(built.reasons),
        "category": episode.category.value,
        "category_code": episode.category.code,
        "last_seen_at": iso(episode.last_seen_at),
        "last_seen_adjusted": built.adjusted,
        "reported_at": iso(episode.reported_at),
        "profile_missing": episode.profile_missing,
        "flags": sorted(f.value for f in episode.flags),
        "immediate_danger": episode.immediate_danger,
        "reporter_role": reporter_role,
    }


def dates(episode: Episode) -> dict[str, Any]:
    """What the export and the audit read of an episode after it changed."""
    return {
        "last_seen_at": iso(episode.last_seen_at),
        "returned_at": iso(episode.returned_at),
        "category": episode.category.value,
        "category_code": episode.category.code,
        "flags": sorted(f.value for f in episode.flags),
    }


def amend(run: Run, episode: Episode, fact: Fact, detail: dict[str, Any]) -> None:
    """A report or update about a closed episode: recorded by when it happened, no alert."""
    old = episode.category
    floor = timeline.previous_end(run.state, episode.last_seen_at, besides=episode)
    adjusted = timeline.derive(episode, timeline.with_fact(episode, fact), floor)
    run.record(
        episode.code,
        "amended",
        **detail,
        reason="late_information",
        category_from=old.value,
        last_seen_adjusted=adjusted,
        **dates(episode),
    )


def record_closed(
    run: Run,
    facts: list[Fact],
    returned_at: datetime,
    how: How,
    reporter_role: str,
    *,
    reason: str,
    not_before: datetime | None = None,
) -> Episode:
    """An episode the child is known to be back from: recorded at its own dates, one notice,
    and the return home interview timers that are not yet due."""
    built = build(run, facts, not_before=not_before, late=True)
    episode = built.episode
    returned_at = max(episode.last_seen_at, min(returned_at, run.now))
    episode.returned_at, episode.closed_at, episode.returned_how = returned_at, run.now, how
    covered = [step.step_id for step in timing.due_rhi(episode, run.policy.escalation, run.now)]
    run.record(
        episode.code, "opened", late=True, reason=reason, **opened_detail(built, reporter_role)
    )
    run.record(
        episode.code,
        "closed",
        late=True,
        reason=reason,
        how=how,
        returned_at=iso(returned_at),
        returned_at_adjusted=False,
        last_seen_at=iso(episode.last_seen_at),
        category=episode.category.value,
        category_code=episode.category.code,
        tier=episode.tier.value,
        acknowledged=False,
        reporter_role=reporter_role,
        rhi_steps_in_notice=covered,
    )
    run.state.recent_episodes.append(episode)
    _notify(run, episode, covered)
    return episode


def _notify(run: Run, episode: Episode, covered: list[str]) -> None:
    """One notice instead of a ladder; it also stands for the interview reminders already due
    (it says when the interview is due), so recording a past episode sends no burst."""
    notice = run.policy.escalation.late_report
    for step_id in covered:
        episode.fired[step_id] = run.now
    roles = [r.value for r in notice.roles]
    if timing.RHI_OVERDUE in covered:
        rhi = run.policy.escalation.return_home_interview
        roles += [r.value for r in rhi.overdue_roles if r.value not in roles]
    run.alert(
        episode,
        step_id=LATE_REPORT_STEP_ID,
        kind=AlertKind.LATE_REPORT,
        roles=tuple(roles),
        channels=notice.channels,
        template=notice.template,
    )


def take_held(run: Run, start: datetime, limit: datetime | None, code: str) -> HeldReturn | None:
    held = timeline.held_return_for(run.state, start, limit, code)
    if held is not None:
        run.state.held_returns = [h for h in run.state.held_returns if h is not held]
    return held


def hold(run: Run, event: ReturnReported) -> None:
    """A return that fits no episode yet: kept for the absence it ends."""
    held = HeldReturn(
        event_id=event.event_id,
        episode_code=event.episode_code,
        returned_at=min(event.returned_at, run.now),
        how=event.how,
        reporter_role=event.reporter.role,
        held_at=run.now,
    )
    run.state.held_returns = [*run.state.held_returns, held][-HELD_RETURNS_CAP:]
    run.record(
        NO_EPISODE,
        "return_held",
        returned_at=iso(held.returned_at),
        how=held.how,
        reporter_role=held.reporter_role,
        held_until=iso(run.now + LATENESS_BOUND),
    )


def expire_held(run: Run) -> None:
    state = run.state
    if not state.held_returns:
        return
    kept = []
    for held in state.held_returns:
        if held.held_at + LATENESS_BOUND <= run.now:
            run.ignore(
                NO_EPISODE,
                "return_without_absence",
                returned_at=iso(held.returned_at),
                held_at=iso(held.held_at),
            )
        else:
            kept.append(held)
    state.held_returns = kept


def reclose(run: Run, episode: Episode, event: ReturnReported) -> None:
    """A return for a closed episode, earlier than the one it has: the child was back by then.
    If the return lies between two of its reports they were two episodes (the part without the
    opening report becomes its own); if every report came before it, the episode ends there
    and its old return is held for the later absence it must have ended. Otherwise a repeat."""
    end, t = episode.returned_at, event.returned_at
    facts = timeline.facts_of(episode)
    if end is None or t >= end or t < episode.last_seen_at:
        run.ignore(episode.code, "episode_closed", returned_at=iso(t))
        return
    parts = timeline.split(facts, t)
    if parts is None:
        if any(f.at >= t for f in facts):
            run.ignore(episode.code, "episode_closed", returned_at=iso(t))
            return
        _hold_displaced(run, episode)
        episode.returned_at = t
        run.record(episode.code, "amended", reason="earlier_return", **dates(episode))
        return
    before, after = parts
    role = event.reporter.role
    if any(f.event_id == episode.opened_by_event for f in after):
        timeline.derive(episode, after, t)
        run.record(episode.code, "amended", reason="split", **dates(episode))
        record_closed(run, before, t, event.how, role, reason="split")
        return
    floor = timeline.previous_end(run.state, episode.last_seen_at, besides=episode)
    timeline.derive(episode, before, floor)
    episode.returned_at = max(episode.last_seen_at, t)
    run.record(episode.code, "amended", reason="split", **dates(episode))
    how = episode.returned_how or "returned"
    record_closed(run, after, end, how, role, reason="split", not_before=episode.returned_at)


def _hold_displaced(run: Run, episode: Episode) -> None:
    """The return an episode had until an earlier one came in: it ended a later absence."""
    assert episode.returned_at is not None
    held = HeldReturn(
        event_id=uuid5(episode.opened_by_event, f"displaced:{episode.returned_at.isoformat()}"),
        episode_code=None,
        returned_at=episode.returned_at,
        how=episode.returned_how or "returned",
        reporter_role="displaced",
        held_at=run.now,
    )
    run.state.held_returns = [*run.state.held_returns, held][-HELD_RETURNS_CAP:]
    run.record(
        NO_EPISODE,
        "return_held",
        reason="displaced",
        from_episode=episode.code,
        returned_at=iso(held.returned_at),
        how=held.how,
        held_until=iso(run.now + LATENESS_BOUND),
    )


def record_history(run: Run, event: HistoricEpisode) -> None:
    """An imported past episode: closed at its own dates, no alert and no interview timers
    (it is history); a repeat or an overlap with what is known is refused with its reason."""
    state = run.state
    start, end = london_midnight(event.started_on), london_midnight(event.ended_on)
    code = episode_code_for(state.child_ref, event.event_id)
    detail: dict[str, Any] = {"source_row": event.source_row, "started_on": str(event.started_on)}
    if any(e.code == code for e in timeline.episodes(state)):
        run.ignore(code, "already_recorded", **detail)
        return
    clash = next(
        (
            e
            for e in timeline.episodes(state)
            if e.last_seen_at < max(end, start + MINUTE)
            and (e.returned_at is None or start < e.returned_at)
        ),
        None,
    )
    if clash is not None or end > run.now:
        reason = "ends_in_the_future" if clash is None else "overlaps_known_episode"
        run.ignore(clash.code if clash else code, reason, **detail)
        return
    fact = Fact(event_id=event.event_id, at=start, last_seen_at=start, category=event.category)
    episode = build(run, [fact], late=True).episode
    episode.returned_at, episode.closed_at, episode.returned_how = end, run.now, "returned"
    for step in timing.rhi_steps(run.policy.escalation):
        episode.fired[step.step_id] = run.now  # history: no interview reminders
    tier = episode.tier.value
    run.record(code, "opened", late=True, reason="imported", tier=tier, **detail, **dates(episode))
    run.record(code, "closed", late=True, reason="imported", how="returned", **dates(episode))
    state.recent_episodes.append(episode)


def london_midnight(day: date) -> datetime:
    """The start of a London calendar day as a UTC instant: an imported date stays that date
    in the export whatever the clocks do, and a live episode later that day never overlaps."""
    return datetime.combine(day, time.min, tzinfo=LONDON).astimezone(UTC)
