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
from uuid import NAMESPACE_URL, UUID, uuid5

from config.policy import Policy, Role, Step
from schemas.alerts import Alert, AlertKind, Channel, RepeatCount
from schemas.common import Category, RiskFlag, authority_of
from schemas.events import (
    AbsenceReported,
    Acknowledgement,
    CheckIn,
    ChildProfile,
    EpisodeUpdate,
    InputEvent,
    ReturnInterviewRecorded,
    ReturnReported,
    TimerDue,
)
from schemas.records import EpisodeRecord, RecordAction
from streams.episodes import ladder as timing
from streams.episodes.risk import Assessment, assess_risk
from streams.episodes.state import (
    ACKNOWLEDGERS_CAP,
    NO_EPISODE,
    RECENT_EPISODES_CAP,
    SEEN_EVENT_IDS_CAP,
    ChildState,
    Effects,
    Episode,
    Renotify,
    episode_code_for,
    seen_key,
)

__all__ = ["Due", "apply", "next_due", "next_due_at"]

# Fixed namespace: changing it would change every derived id and defeat replay de-duplication.
_ID_NAMESPACE: Final = uuid5(NAMESPACE_URL, "urn:missing-alerts:episode-engine")

RETURNED_STEP_ID: Final = "returned"
REPEAT_STEP_ID: Final = "repeat-strategy-meeting"
# Closed episodes are kept this long beyond the longest look-back window, so an absence reported
# late (last seen days ago) still counts the episodes before it.
RETENTION_SLACK: Final = timedelta(days=7)

Action = RecordAction


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
    run = _Run(current, event, now, policy)
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


# ------------------------------------------------------------------------------ effects


class _Run:
    """One apply call: the state being changed, and the effects with ids derived from the event."""

    def __init__(self, state: ChildState, event: InputEvent, now: datetime, policy: Policy):
        self.state = state
        self.event = event
        self.now = now
        self.policy = policy
        self.effects = Effects()

    def derived_id(self, discriminator: str) -> UUID:
        return uuid5(_ID_NAMESPACE, f"{self.event.event_id}|{discriminator}")

    def record(
        self, code: str, action: Action, *, id_key: str | None = None, **detail: Any
    ) -> None:
        index = len(self.effects.records)
        self.effects.records.append(
            EpisodeRecord(
                event_id=self.derived_id(id_key or f"record:{index}:{action}"),
                occurred_at=self.now,
                child_ref=self.event.child_ref,
                episode_code=code,
                action=action,
                detail={"event_type": self.event.type, **detail},
            )
        )

    def ignore(self, code: str, reason: str, **detail: Any) -> None:
        self.record(code, "ignored", reason=reason, **detail)

    def alert(
        self,
        episode: Episode,
        *,
        step_id: str,
        kind: AlertKind,
        roles: tuple[str, ...],
        channels: tuple[Channel, ...],
        template: str,
        due_at: datetime | None = None,
        once: bool = True,
        repeat: RepeatCount | None = None,
    ) -> bool:
        """Emit one alert; ``once`` ids are remembered so they can never be sent twice."""
        if once and step_id in episode.fired:
            return False
        alert = self._build_alert(episode, step_id, kind, roles, channels, template, repeat)
        self.effects.alerts.append(alert)
        if once:
            episode.fired[step_id] = self.now
        episode.notified_roles.extend(r for r in _unique(roles) if r not in episode.notified_roles)
        self.record(
            episode.code,
            "step_fired",
            step_id=step_id,
            alert_id=alert.alert_id,
            kind=kind.value,
            tier=episode.tier.value,
            roles=list(roles),
            channels=[c.value for c in channels],
            due_at=_iso(due_at),
        )
        return True

    def _build_alert(
        self,
        episode: Episode,
        step_id: str,
        kind: AlertKind,
        roles: tuple[str, ...],
        channels: tuple[Channel, ...],
        template: str,
        repeat: RepeatCount | None = None,
    ) -> Alert:
        profile = self.state.profile
        alert_id = f"{episode.code}:{step_id}"
        returned_at = episode.returned_at
        rhi_within = self.policy.escalation.return_home_interview.due_within
        return Alert(
            event_id=self.derived_id(f"alert:{alert_id}"),
            occurred_at=self.now,
            child_ref=self.state.child_ref,
            alert_id=alert_id,
            kind=kind,
            episode_code=episode.code,
            step_id=step_id,
            tier=episode.tier,
            category=episode.category,
            roles=roles,
            channels=channels,
            template=template,
            # With no profile yet, the authority the reference names: the child's own duty
            # team is told, not the default authority's.
            local_authority=(
                profile.local_authority
                if profile
                else authority_of(self.state.child_ref, self.policy.rota.default_local_authority)
            ),
            police_force=profile.police_force if profile else None,
            initials=profile.initials if profile else None,
            last_seen_at=episode.last_seen_at,
            reported_at=episode.reported_at,
            profile_missing=profile is None,
            returned_at=returned_at,
            rhi_due_at=returned_at + rhi_within if returned_at else None,
            repeat=repeat,
        )


# ----------------------------------------------------------------------------- dispatch


def _handle(run: _Run, event: InputEvent) -> None:
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
        case TimerDue():
            pass  # the catch-up phase fires whatever is due, whichever episode the timer named


def _record_duplicate(run: _Run) -> None:
    code = _named_episode(run.event) or (
        run.state.open_episode.code if run.state.open_episode else None
    )
    if code is not None:
        # Its own id key: a duplicate's record must not collide with the original's records.
        run.record(code, "ignored", id_key="duplicate", reason="duplicate_event")


def _named_episode(event: InputEvent) -> str | None:
    if isinstance(
        event, ReturnReported | EpisodeUpdate | Acknowledgement | ReturnInterviewRecorded
    ):
        return event.episode_code
    return None


def _remember(state: ChildState, key: str) -> None:
    ids = state.seen_event_ids
    ids.append(key)
    if len(ids) > SEEN_EVENT_IDS_CAP:
        del ids[:-SEEN_EVENT_IDS_CAP]


def _prune(state: ChildState, now: datetime, policy: Policy) -> None:
    """Keep closed episodes only while a rule can still look at them."""
    if not state.recent_episodes:
        return  # most children, most of the time
    windows = (policy.escalation.repeat_episodes.window, policy.risk.medium_previous_window)
    horizon = now - max(windows) - RETENTION_SLACK
    kept = [
        e
        for e in state.recent_episodes
        if timing.pending_rhi(e, policy.escalation)
        or (e.returned_at is not None and e.returned_at >= horizon)
    ]
    state.recent_episodes = kept[-RECENT_EPISODES_CAP:]


# ---------------------------------------------------------------------------- handlers


def _on_profile(run: _Run, event: ChildProfile) -> None:
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
    _absorb(run, episode, "updated", {"kind": "profile", "profile_received": received})


def _on_check_in(run: _Run, event: CheckIn) -> None:
    episode = run.state.open_episode
    if episode is None:
        run.state.last_seen_at = _latest(run.state.last_seen_at, event.seen_at)
        return
    run.record(
        episode.code,
        "sighting",
        source="check_in",
        seen_at=_iso(event.seen_at),
        present_at_placement=event.present_at_placement,
        reporter_role=event.reporter.role,
    )


def _on_absence(run: _Run, event: AbsenceReported) -> None:
    episode = run.state.open_episode
    if episode is None:
        _open(run, event)
        return
    _absorb(
        run,
        episode,
        "updated",
        {"kind": "absence", "reporter_role": event.reporter.role},
        category=event.category,
        added_flags=event.reported_flags,
        immediate_danger=event.immediate_danger,
        last_seen_at=event.last_seen_at,
    )


def _on_update(run: _Run, event: EpisodeUpdate) -> None:
    episode = _target_open_episode(run, event.episode_code)
    if episode is None:
        return
    action: Action = "sighting" if event.kind == "sighting" else "updated"
    _absorb(
        run,
        episode,
        action,
        {"kind": event.kind, "source": "update", "reporter_role": event.reporter.role},
        category=event.category,
        added_flags=event.added_flags,
        immediate_danger=event.immediate_danger,
    )


def _on_acknowledgement(run: _Run, event: Acknowledgement) -> None:
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


def _on_return(run: _Run, event: ReturnReported) -> None:
    episode = _target_open_episode(run, event.episode_code)
    if episode is not None:
        _close(run, episode, event)


def _on_return_interview(run: _Run, event: ReturnInterviewRecorded) -> None:
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


def _target_open_episode(run: _Run, code: str | None) -> Episode | None:
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


def _open(run: _Run, event: AbsenceReported) -> None:
    state = run.state
    previous = state.last_closed()
    if previous is not None and previous.returned_at and event.occurred_at < previous.returned_at:
        # Reported before the child last came back: it belongs to an episode already closed.
        run.ignore(previous.code, "report_predates_return", reporter_role=event.reporter.role)
        return
    last_seen_at, adjusted = _not_before_last_return(state, event.last_seen_at)
    assessment = _assess(run, event.reported_flags, event.immediate_danger, last_seen_at)
    episode = Episode(
        code=episode_code_for(event.child_ref, event.event_id),
        opened_by_event=event.event_id,
        reported_at=event.occurred_at,
        last_seen_at=last_seen_at,
        category=event.category,
        tier=assessment.tier,
        assessed_tier=assessment.tier,
        flags=event.reported_flags,
        immediate_danger=event.immediate_danger,
        profile_missing=state.profile is None,
    )
    state.open_episode = episode
    run.record(
        episode.code,
        "opened",
        tier=assessment.tier.value,
        reasons=list(assessment.reasons),
        category=episode.category.value,
        category_code=episode.category.code,
        last_seen_at=_iso(episode.last_seen_at),
        last_seen_adjusted=adjusted,
        reported_at=_iso(episode.reported_at),
        profile_missing=episode.profile_missing,
        flags=_flag_names(episode.flags),
        immediate_danger=episode.immediate_danger,
        reporter_role=event.reporter.role,
    )
    _fire_ladder(run, episode)
    _check_repeat(run, episode)


def _absorb(
    run: _Run,
    episode: Episode,
    action: Action,
    detail: dict[str, Any],
    *,
    category: Category | None = None,
    added_flags: frozenset[RiskFlag] = frozenset(),
    immediate_danger: bool = False,
    last_seen_at: datetime | None = None,
) -> None:
    """Merge new information into the open episode, record it, and escalate if the tier rose."""
    old_category = episode.category
    new_flags = added_flags - episode.flags
    episode.flags = episode.flags | added_flags
    episode.immediate_danger = episode.immediate_danger or immediate_danger
    if category is not None:
        episode.category = category
    moved = last_seen_at is not None and _move_last_seen_earlier(run.state, episode, last_seen_at)
    assessment = _assess(run, episode.flags, episode.immediate_danger, episode.last_seen_at)
    episode.assessed_tier = assessment.tier
    run.record(
        episode.code,
        action,
        **detail,
        added_flags=_flag_names(new_flags),
        immediate_danger=immediate_danger,
        last_seen_moved_earlier=moved,
        last_seen_at=_iso(episode.last_seen_at),
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


def _move_last_seen_earlier(state: ChildState, episode: Episode, reported: datetime) -> bool:
    """Only earlier: later would re-time steps already sent; earlier is the safer reading."""
    candidate, _ = _not_before_last_return(state, reported)
    if candidate >= episode.last_seen_at:
        return False
    episode.last_seen_at = candidate
    return True


def _not_before_last_return(state: ChildState, last_seen_at: datetime) -> tuple[datetime, bool]:
    """Periods of one child may not overlap (SSDA903): clamp to the previous return."""
    previous = state.last_closed()
    if previous is None or previous.returned_at is None or last_seen_at >= previous.returned_at:
        return last_seen_at, False
    return previous.returned_at, True


def _assess(
    run: _Run, flags: frozenset[RiskFlag], immediate_danger: bool, last_seen_at: datetime
) -> Assessment:
    return assess_risk(
        run.policy.risk,
        profile=run.state.profile,
        reported_flags=flags,
        immediate_danger=immediate_danger,
        last_seen_at=last_seen_at,
        previous_episode_starts=[e.last_seen_at for e in run.state.recent_episodes],
    )


def _raise_tier(run: _Run, episode: Episode, assessment: Assessment) -> None:
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
    roles = tuple(r for r in _unique(told) if r not in covered)
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


def _check_repeat(run: _Run, episode: Episode) -> None:
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


def _close(run: _Run, episode: Episode, event: ReturnReported) -> None:
    state, now = run.state, run.now
    # A return cannot precede the absence nor lie in the future; clamp, and say so.
    returned_at = max(episode.last_seen_at, min(event.returned_at, now))
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
        returned_at=_iso(returned_at),
        returned_at_adjusted=returned_at != event.returned_at,
        last_seen_at=_iso(episode.last_seen_at),
        category=episode.category.value,
        category_code=episode.category.code,
        tier=episode.tier.value,
        acknowledged=episode.acknowledged,
        reporter_role=event.reporter.role,
    )
    if episode.notified_roles:
        notice = run.policy.escalation.return_notice
        run.alert(
            episode,
            step_id=RETURNED_STEP_ID,
            kind=AlertKind.RETURNED,
            roles=tuple(episode.notified_roles),
            channels=notice.channels,
            template=notice.template,
        )


# ------------------------------------------------------------------------------ firing


def _fire_due(run: _Run) -> None:
    episode = run.state.open_episode
    if episode is not None:
        _fire_ladder(run, episode)
        _fire_renotify(run, episode)
    for closed in run.state.recent_episodes:
        _fire_rhi(run, closed)


def _fire_ladder(run: _Run, episode: Episode) -> None:
    ladder = timing.ladder_for(episode, run.policy.escalation)
    for step in timing.due_steps(ladder, episode, run.now):
        _fire_step(run, episode, step)


def _fire_step(run: _Run, episode: Episode, step: Step) -> None:
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


def _fire_renotify(run: _Run, episode: Episode) -> None:
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


def _fire_rhi(run: _Run, episode: Episode) -> None:
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


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _flag_names(flags: frozenset[RiskFlag]) -> list[str]:
    return sorted(f.value for f in flags)


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
