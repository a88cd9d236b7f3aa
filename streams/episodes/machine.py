"""The episode state machine: ``apply(state, event, now, policy) -> (state, effects)``.

Pure and deterministic: no I/O, no wall clock, no random ids. Every alert and record id is derived
from the input event id, so replaying an event after a crash yields byte-identical output that
downstream de-duplication drops. Design notes and the choices made where the rules are silent:
docs/episode-engine.md.

Each apply works in two phases: first the event itself (open, update, acknowledge, close ...),
then a catch-up that fires everything due at ``now``. Applying the event first means the newest
knowledge wins: an acknowledgement silences a step the timer was late to fire, and a return stops
a "still missing" milestone from going out after the child is back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from config.policy import Policy, Role, Step
from schemas.alerts import AlertKind, Channel, RepeatCount
from schemas.common import RiskFlag
from schemas.events import (
    AbsenceReported,
    Acknowledgement,
    CheckIn,
    ChildProfile,
    EpisodeUpdate,
    HistoricEpisode,
    InputEvent,
    ReportCancelled,
    ReturnInterviewRecorded,
    ReturnReported,
    TimerDue,
)
from streams.episodes import cancel, late, timeline
from streams.episodes import ladder as timing
from streams.episodes.risk import Assessment
from streams.episodes.run import Action, Run, iso, unique
from streams.episodes.state import (
    ACKNOWLEDGERS_CAP,
    NO_EPISODE,
    RECENT_EPISODES_CAP,
    SEEN_EVENT_IDS_CAP,
    ChildState,
    Effects,
    Episode,
    Fact,
    Renotify,
    episode_code_for,
    seen_key,
)

__all__ = ["Due", "apply", "next_due", "next_due_at"]

RETURNED_STEP_ID: Final = "returned"
REPEAT_STEP_ID: Final = "repeat-strategy-meeting"
# Closed episodes are kept this long beyond the longest look-back window, so an absence reported
# late (last seen days ago) still counts the episodes before it.
RETENTION_SLACK: Final = timedelta(days=7)


class Due(NamedTuple):
    at: datetime
    episode_code: str


def apply(
    state: ChildState | None,
    event: InputEvent,
    now: datetime,
    policy: Policy,
    *,
    reuse_state: bool = False,
) -> tuple[ChildState, Effects]:
    """``reuse_state=True`` lets a caller that discards the old state (the engine's batch loop)
    skip the deep copy; by default the input is never mutated."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if state is None:
        current = ChildState(child_ref=event.child_ref)
    else:
        current = state if reuse_state else state.model_copy(deep=True)
    run = Run(current, event, now, policy)
    if event.child_ref != current.child_ref:
        run.ignore(NO_EPISODE, "wrong_child")
    else:
        # Timer events are idempotent by construction; keeping their ids would only push
        # genuine event ids out of the bounded window.
        key = None if isinstance(event, TimerDue) else seen_key(event.event_id)
        if key is not None and key in current.seen_event_ids:
            _record_duplicate(run)
        else:
            _handle(run, event)
            _fire_due(run)
            if key is not None:
                _remember(current, key)
            _prune(current, now, policy)
    return current, run.effects


def next_due(state: ChildState, policy: Policy) -> Due | None:
    """The earliest moment a TimerDue would fire something, and which episode it is for."""
    episodes = [*state.recent_episodes]
    if state.open_episode is not None:
        episodes.append(state.open_episode)
    dues = [
        Due(at, episode.code)
        for episode in episodes
        if (at := timing.next_due_at(episode, policy.escalation)) is not None
    ]
    return min(dues, default=None)


def next_due_at(state: ChildState, policy: Policy) -> datetime | None:
    due = next_due(state, policy)
    return due.at if due is not None else None


# ----------------------------------------------------------------------------- dispatch


def _handle(run: Run, event: InputEvent) -> None:
    if cancel.refuses(run, event, _named_episode(event)):
        return
    match event:
        case ChildProfile():
            _on_profile(run, event)
        case CheckIn():
            _on_check_in(run, event)
        case AbsenceReported():
            _on_absence(run, event)
        case EpisodeUpdate():
            _on_update(run, event)
        case Acknowledgement():
            _on_acknowledgement(run, event)
        case ReturnReported():
            _on_return(run, event)
        case ReturnInterviewRecorded():
            _on_return_interview(run, event)
        case ReportCancelled():
            cancel.cancel(run, event)
        case HistoricEpisode():
            late.record_history(run, event)
        case TimerDue():
            pass  # the catch-up phase fires whatever is due, whichever episode the timer named


def _record_duplicate(run: Run) -> None:
    code = _named_episode(run.event) or (
        run.state.open_episode.code if run.state.open_episode else None
    )
    if code is not None:
        # Its own id key: a duplicate's record must not collide with the original's records.
        run.record(code, "ignored", id_key="duplicate", reason="duplicate_event")


NAMING_EVENTS: Final = (
    ReturnReported,
    EpisodeUpdate,
    Acknowledgement,
    ReturnInterviewRecorded,
    ReportCancelled,
)


def _named_episode(event: InputEvent) -> str | None:
    if isinstance(event, NAMING_EVENTS):
        return event.episode_code
    if isinstance(event, HistoricEpisode):
        return episode_code_for(event.child_ref, event.event_id)
    return None


def _remember(state: ChildState, key: str) -> None:
    ids = state.seen_event_ids
    ids.append(key)
    if len(ids) > SEEN_EVENT_IDS_CAP:
        del ids[:-SEEN_EVENT_IDS_CAP]


def _prune(state: ChildState, now: datetime, policy: Policy) -> None:
    """Keep closed episodes only while a rule can still look at them; cancelled ones as long,
    so a late event naming one is still recognised."""
    if not state.recent_episodes and not state.cancelled_episodes:
        return  # most children, most of the time
    windows = (policy.escalation.repeat_episodes.window, policy.risk.medium_previous_window)
    horizon = now - max(windows) - RETENTION_SLACK
    cancelled = [e for e in state.cancelled_episodes if (e.cancelled_at or now) >= horizon]
    state.cancelled_episodes = cancelled[-RECENT_EPISODES_CAP:]
    kept = [
        e
        for e in state.recent_episodes
        if timing.pending_rhi(e, policy.escalation)
        or (e.returned_at is not None and e.returned_at >= horizon)
    ]
    state.recent_episodes = kept[-RECENT_EPISODES_CAP:]


# ---------------------------------------------------------------------------- handlers


def _on_profile(run: Run, event: ChildProfile) -> None:
    state, episode = run.state, run.state.open_episode
    if state.profile is not None and event.occurred_at < state.profile.occurred_at:
        if episode is not None:
            run.ignore(episode.code, "stale_profile")
        return
    state.profile = event
    if episode is None:
        return
    received = episode.profile_missing
    episode.profile_missing = False
    _absorb(run, episode, None, "updated", {"kind": "profile", "profile_received": received})


def _on_check_in(run: Run, event: CheckIn) -> None:
    episode = run.state.open_episode
    if episode is None:
        run.state.last_seen_at = _latest(run.state.last_seen_at, event.seen_at)
        return
    run.record(
        episode.code,
        "sighting",
        source="check_in",
        seen_at=iso(event.seen_at),
        present_at_placement=event.present_at_placement,
        reporter_role=event.reporter.role,
    )


def _on_absence(run: Run, event: AbsenceReported) -> None:
    """By when it happened: a report made while a known episode was under way belongs to it;
    else a held return may show the child is already back; else, made before a later known
    episode began with no return between, it is that episode's earlier start; else the child
    is missing now and it opens an episode (never overlapping the last return)."""
    state = run.state
    fact = Fact(
        event_id=event.event_id,
        at=event.occurred_at,
        last_seen_at=event.last_seen_at,
        category=event.category,
        flags=event.reported_flags,
        immediate_danger=event.immediate_danger,
    )
    known = timeline.containing(state, event.occurred_at)
    if known is None:
        # Not before the last return the reporter could have known of.
        floor = timeline.previous_end(state, event.occurred_at)
        start = max(event.last_seen_at, floor) if floor else event.last_seen_at
        later = timeline.next_after(state, event.occurred_at)
        limit = later.last_seen_at if later is not None else None
        code = episode_code_for(event.child_ref, event.event_id)
        held = late.take_held(run, start, limit, code)
        if held is not None:
            reason = "past_episode" if later is not None else "returned_before_reported"
            role, how = held.reporter_role, held.how
            late.record_closed(
                run, [fact], held.returned_at, how, role, reason=reason, not_before=floor
            )
            return
        if later is None:
            _open(run, [fact], event.reporter.role, not_before=floor)
            return
        known = later
    detail = {"kind": "absence", "reporter_role": event.reporter.role}
    _merge(run, known, fact, "updated", detail)


def _on_update(run: Run, event: EpisodeUpdate) -> None:
    """An update naming an episode goes to it (a closed one only if it happened before the
    return); one naming none goes to the episode under way when it happened, else the open one."""
    state, code, at = run.state, event.episode_code, event.occurred_at
    episode = (
        _named(state, code)
        if code is not None
        else (timeline.containing(state, at) or state.open_episode)
    )
    if episode is None:
        run.ignore(code or NO_EPISODE, "unknown_episode" if code else "no_open_episode")
        return
    if episode.returned_at is not None and at >= episode.returned_at:
        run.ignore(episode.code, "episode_closed", occurred_at=iso(at))
        return
    fact = Fact(
        event_id=event.event_id,
        at=at,
        category=event.category,
        flags=event.added_flags,
        immediate_danger=event.immediate_danger,
    )
    action: Action = "sighting" if event.kind == "sighting" else "updated"
    detail = {"kind": event.kind, "source": "update", "reporter_role": event.reporter.role}
    _merge(run, episode, fact, action, detail)


def _named(state: ChildState, code: str | None) -> Episode | None:
    episode = state.open_episode
    if code is None:
        return episode
    if episode is not None and episode.code == code:
        return episode
    return state.closed_episode(code)


def _merge(run: Run, episode: Episode, fact: Fact, action: Action, detail: dict[str, Any]) -> None:
    if episode is run.state.open_episode:
        _absorb(run, episode, fact, action, detail)
    else:
        late.amend(run, episode, fact, detail)


def _on_acknowledgement(run: Run, event: Acknowledgement) -> None:
    episode = _target_open_episode(run, event.episode_code)
    if episode is None:
        return
    first = not episode.acknowledged
    ladder = timing.ladder_for(episode, run.policy.escalation)
    silenced = [s.id for s in ladder.steps if s.until_acknowledged and s.id not in episode.fired]
    known = event.recipient_id in episode.acknowledged_by
    if not known and len(episode.acknowledged_by) < ACKNOWLEDGERS_CAP:
        episode.acknowledged_by[event.recipient_id] = run.now
    run.record(
        episode.code,
        "acknowledged",
        recipient_id=event.recipient_id,
        via=event.via,
        basis=event.basis,
        api_key_id=event.api_key_id,
        first=first,
        silenced_steps=silenced if first else [],
    )


def _on_return(run: Run, event: ReturnReported) -> None:
    """A return ends the episode it names, or the one under way at its time; one that fits no
    episode is held for the absence it ends (streams/episodes/late.py)."""
    state, code = run.state, event.episode_code
    if code is not None:
        episode = _named(state, code)
        if episode is None:
            run.ignore(code, "unknown_episode")
            return
    else:
        episode = timeline.containing(state, event.returned_at)
        if episode is None:
            late.hold(run, event)
            return
    if episode is state.open_episode:
        _end_open(run, episode, event)
    else:
        late.reclose(run, episode, event)


def _on_return_interview(run: Run, event: ReturnInterviewRecorded) -> None:
    state, code = run.state, event.episode_code
    detail: dict[str, Any] = {
        "offered_on": event.offered_on.isoformat(),
        "accepted": event.accepted,
    }
    episode = state.closed_episode(code)
    if episode is None:
        open_now = state.open_episode is not None and state.open_episode.code == code
        run.ignore(code, "episode_open" if open_now else "unknown_episode", **detail)
        return
    first = episode.rhi_offered_on is None
    episode.rhi_offered_on = event.offered_on
    episode.rhi_accepted = event.accepted
    run.record(code, "return_interview_recorded", first=first, **detail)


def _target_open_episode(run: Run, code: str | None) -> Episode | None:
    """The open episode an event is about, or None after recording why it was ignored."""
    episode = run.state.open_episode
    if episode is not None and code in (None, episode.code):
        return episode
    if code is None:
        run.ignore(NO_EPISODE, "no_open_episode")
    elif run.state.closed_episode(code) is not None:
        run.ignore(code, "episode_closed")
    else:
        run.ignore(code, "unknown_episode")
    return None


# --------------------------------------------------------------------------- lifecycle


def _open(run: Run, facts: list[Fact], reporter_role: str, **extra: Any) -> Episode:
    state = run.state
    built = late.build(run, facts, not_before=extra.pop("not_before", None))
    episode = state.open_episode = built.episode
    run.record(episode.code, "opened", **extra, **late.opened_detail(built, reporter_role))
    _fire_ladder(run, episode)
    _check_repeat(run, episode)
    return episode


def _absorb(
    run: Run, episode: Episode, fact: Fact | None, action: Action, detail: dict[str, Any]
) -> None:
    """Merge new information into the open episode, record it, and escalate if the tier rose.
    The start only ever moves earlier (facts are only added): later would re-time steps
    already sent."""
    old_category, old_flags, old_start = episode.category, episode.flags, episode.last_seen_at
    if fact is not None:
        floor = timeline.previous_end(run.state, episode.last_seen_at, besides=episode)
        timeline.derive(episode, timeline.with_fact(episode, fact), floor)
    moved = episode.last_seen_at < old_start
    assessment = run.assess(episode.flags, episode.immediate_danger, episode.last_seen_at)
    episode.assessed_tier = assessment.tier
    run.record(
        episode.code,
        action,
        **detail,
        added_flags=_flag_names(episode.flags - old_flags),
        immediate_danger=fact is not None and fact.immediate_danger,
        last_seen_moved_earlier=moved,
        last_seen_at=iso(episode.last_seen_at),
        assessed_tier=assessment.tier.value,
    )
    if episode.category != old_category:
        run.record(
            episode.code,
            "category_changed",
            **{"from": old_category.value, "to": episode.category.value},
            category_code=episode.category.code,
        )
    if assessment.tier.rank > episode.tier.rank:
        _raise_tier(run, episode, assessment)


def _raise_tier(run: Run, episode: Episode, assessment: Assessment) -> None:
    """Move onto the higher ladder at once; tell everyone concerned exactly once.

    New-ladder steps already elapsed fire now and carry the news to their own roles. A tier_raised
    alert tells the rest: every role told so far, plus the roles of elapsed unacknowledged steps
    that an acknowledgement silences (else a raise after an acknowledgement would reach nobody new).
    """
    old = episode.tier
    episode.tier = assessment.tier
    run.record(
        episode.code,
        "tier_changed",
        **{"from": old.value, "to": assessment.tier.value},
        reasons=list(assessment.reasons),
    )
    ladder = timing.ladder_for(episode, run.policy.escalation)
    firing = timing.due_steps(ladder, episode, run.now)
    silenced = timing.silenced_steps(ladder, episode, run.now)
    covered = {role.value for step in firing for role in step.roles}
    told = [*episode.notified_roles, *_role_names(r for s in silenced for r in s.roles)]
    roles = tuple(r for r in unique(told) if r not in covered)
    if roles:
        run.alert(
            episode,
            step_id=f"tier-raised-{assessment.tier.value}",
            kind=AlertKind.TIER_RAISED,
            roles=roles,
            channels=tuple(Channel),
            template=run.policy.escalation.tier_raised_template,
        )
    for step in firing:
        _fire_step(run, episode, step)


def _check_repeat(run: Run, episode: Episode) -> None:
    """The count-th episode (counting this one) starting within the window calls a meeting."""
    rule = run.policy.escalation.repeat_episodes
    start = episode.last_seen_at
    earlier = [
        e for e in run.state.recent_episodes if start - rule.window <= e.last_seen_at <= start
    ]
    if len(earlier) + 1 >= rule.count:
        run.alert(
            episode,
            step_id=REPEAT_STEP_ID,
            kind=AlertKind.STRATEGY_MEETING,
            roles=_role_names(rule.roles),
            channels=rule.channels,
            template=rule.template,
            repeat=RepeatCount(episodes=len(earlier) + 1, window=rule.window),
        )


def _end_open(run: Run, episode: Episode, event: ReturnReported) -> None:
    """Close the open episode; if the return lies between two of its reports they were two
    absences: the earlier is closed, the later is (or stays) the open one."""
    # A return cannot precede the absence nor lie in the future; clamp, and say so.
    returned_at = max(episode.last_seen_at, min(event.returned_at, run.now))
    parts = timeline.split(timeline.facts_of(episode), returned_at)
    if parts is None:
        _close(run, episode, event, returned_at)
        return
    before, after = parts
    if any(f.event_id == episode.opened_by_event for f in after):
        timeline.derive(episode, after, returned_at)
        run.record(episode.code, "amended", reason="split", **late.dates(episode))
        late.record_closed(run, before, returned_at, event.how, event.reporter.role, reason="split")
        return
    floor = timeline.previous_end(run.state, episode.last_seen_at, besides=episode)
    timeline.derive(episode, before, floor)
    _close(run, episode, event, max(returned_at, episode.last_seen_at))
    _open(run, after, event.reporter.role, split_from=episode.code, not_before=returned_at)


def _close(run: Run, episode: Episode, event: ReturnReported, returned_at: datetime) -> None:
    state, now = run.state, run.now
    episode.returned_at, episode.closed_at = returned_at, now
    episode.returned_how = event.how
    episode.renotify = None
    state.open_episode = None
    state.recent_episodes.append(episode)
    state.last_seen_at = _latest(state.last_seen_at, returned_at)
    run.record(
        episode.code,
        "closed",
        how=event.how,
        returned_at=iso(returned_at),
        returned_at_adjusted=returned_at != event.returned_at,
        last_seen_at=iso(episode.last_seen_at),
        category=episode.category.value,
        category_code=episode.category.code,
        tier=episode.tier.value,
        acknowledged=episode.acknowledged,
        reporter_role=event.reporter.role,
    )
    run.tell_everyone_told(
        episode, RETURNED_STEP_ID, AlertKind.RETURNED, run.policy.escalation.return_notice
    )


# ------------------------------------------------------------------------------ firing


def _fire_due(run: Run) -> None:
    late.expire_held(run)
    episode = run.state.open_episode
    if episode is not None:
        _fire_ladder(run, episode)
        _fire_renotify(run, episode)
    for closed in run.state.recent_episodes:
        _fire_rhi(run, closed)


def _fire_ladder(run: Run, episode: Episode) -> None:
    ladder = timing.ladder_for(episode, run.policy.escalation)
    for step in timing.due_steps(ladder, episode, run.now):
        _fire_step(run, episode, step)


def _fire_step(run: Run, episode: Episode, step: Step) -> None:
    fired = run.alert(
        episode,
        step_id=step.id,
        kind=step.kind,
        roles=_role_names(step.roles),
        channels=step.channels,
        template=step.template,
        due_at=timing.step_due_at(episode, step),
    )
    if fired and step.until_acknowledged:
        episode.renotify = Renotify(
            step_id=step.id,
            roles=_role_names(step.roles),
            channels=step.channels,
            template=step.template,
            base_at=run.now,
        )


def _fire_renotify(run: Run, episode: Episode) -> None:
    """At most one re-notify per apply: a late timer must not send a burst of repeats."""
    ladder = timing.ladder_for(episode, run.policy.escalation)
    due = timing.renotify_due_at(ladder, episode)
    target = episode.renotify
    if due is None or target is None or run.now < due:
        return
    count = target.count + 1
    run.alert(
        episode,
        step_id=f"{target.step_id}+r{count}",
        kind=AlertKind.RENOTIFY,
        roles=target.roles,
        channels=target.channels,
        template=target.template,
        due_at=due,
        once=False,
    )
    episode.renotify = target.model_copy(update={"count": count, "base_at": run.now})


def _fire_rhi(run: Run, episode: Episode) -> None:
    for step in timing.due_rhi(episode, run.policy.escalation, run.now):
        returned_at = episode.returned_at
        run.alert(
            episode,
            step_id=step.step_id,
            kind=step.kind,
            roles=_role_names(step.roles),
            channels=run.policy.escalation.return_home_interview.channels,
            template=step.template,
            due_at=returned_at + step.after if returned_at else None,
        )


# ----------------------------------------------------------------------------- helpers


def _role_names(roles: Iterable[Role]) -> tuple[str, ...]:
    return tuple(role.value for role in roles)


def _flag_names(flags: frozenset[RiskFlag]) -> list[str]:
    return sorted(f.value for f in flags)


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current
