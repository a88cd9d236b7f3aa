"""When each part of an episode's escalation falls due: ladder steps, re-notifies, RHI timers.

Pure timing questions over an Episode and the escalation policy. The state machine asks "what is
due at ``now``" and fires it; the timer asks "when is the next thing due" and wakes up then. Both
go through the same functions here, so the timer can never disagree with what apply will fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from config.policy import EscalationPolicy, Ladder, Role, Step
from schemas.alerts import AlertKind
from streams.episodes.state import Episode

RHI_REMINDER: Final = "rhi-reminder"
RHI_OVERDUE: Final = "rhi-overdue"


@dataclass(frozen=True)
class RhiStep:
    """A return-home-interview timer shaped like a ladder step, so it fires the same way."""

    step_id: str
    after: timedelta
    roles: tuple[Role, ...]
    kind: AlertKind
    template: str


def ladder_for(episode: Episode, escalation: EscalationPolicy) -> Ladder:
    """An episode runs on one ladder: its tier's, and the tier only ever rises while open."""
    return escalation.tiers[episode.tier]


def step_due_at(episode: Episode, step: Step) -> datetime:
    return episode.last_seen_at + step.after


def pending_steps(ladder: Ladder, episode: Episode) -> list[Step]:
    """Steps that can still fire: not fired yet, and not silenced by an acknowledgement."""
    return [
        step
        for step in ladder.steps
        if step.id not in episode.fired and not (step.until_acknowledged and episode.acknowledged)
    ]


def due_steps(ladder: Ladder, episode: Episode, now: datetime) -> list[Step]:
    """Pending steps whose delay since last seen has elapsed, in ladder order."""
    return [s for s in pending_steps(ladder, episode) if step_due_at(episode, s) <= now]


def silenced_steps(ladder: Ladder, episode: Episode, now: datetime) -> list[Step]:
    """Elapsed unacknowledged-type steps that will never fire because someone acknowledged."""
    if not episode.acknowledged:
        return []
    return [
        s
        for s in ladder.steps
        if s.until_acknowledged and s.id not in episode.fired and step_due_at(episode, s) <= now
    ]


def renotify_due_at(ladder: Ladder, episode: Episode) -> datetime | None:
    """Re-notify runs only while open, unacknowledged, and after an unacknowledged step fired."""
    target = episode.renotify
    if (
        target is None
        or ladder.renotify_every is None
        or episode.acknowledged
        or episode.closed_at is not None
    ):
        return None
    return target.base_at + ladder.renotify_every


def rhi_steps(escalation: EscalationPolicy) -> tuple[RhiStep, RhiStep]:
    rhi = escalation.return_home_interview
    return (
        RhiStep(
            RHI_REMINDER,
            rhi.reminder_after,
            rhi.reminder_roles,
            AlertKind.RHI_REMINDER,
            rhi.reminder_template,
        ),
        RhiStep(
            RHI_OVERDUE,
            rhi.due_within,
            rhi.overdue_roles,
            AlertKind.RHI_OVERDUE,
            rhi.overdue_template,
        ),
    )


def pending_rhi(episode: Episode, escalation: EscalationPolicy) -> list[tuple[RhiStep, datetime]]:
    """RHI timers still to fire, with due times; none once an interview has been recorded."""
    returned_at = episode.returned_at
    if returned_at is None or episode.rhi_offered_on is not None:
        return []
    return [
        (step, returned_at + step.after)
        for step in rhi_steps(escalation)
        if step.step_id not in episode.fired
    ]


def due_rhi(episode: Episode, escalation: EscalationPolicy, now: datetime) -> list[RhiStep]:
    return [step for step, due in pending_rhi(episode, escalation) if due <= now]


def next_due_at(episode: Episode, escalation: EscalationPolicy) -> datetime | None:
    """Earliest moment something of this episode becomes due, open or closed."""
    if episode.closed_at is not None:
        candidates = [due for _, due in pending_rhi(episode, escalation)]
    else:
        ladder = ladder_for(episode, escalation)
        candidates = [step_due_at(episode, s) for s in pending_steps(ladder, episode)]
        renotify = renotify_due_at(ladder, episode)
        if renotify is not None:
            candidates.append(renotify)
    return min(candidates, default=None)
