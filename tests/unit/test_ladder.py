"""Timing rules of streams.episodes.ladder: when steps, re-notifies and RHI timers fall due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from uuid import UUID

from config.policy import Ladder, Step
from schemas.common import Category, Tier
from streams.episodes import ladder as timing
from streams.episodes.state import Episode, Renotify
from tests.unit.episode_helpers import T0, hours, minutes, shipped_policy

ESCALATION = shipped_policy().escalation
HIGH: Ladder = ESCALATION.tiers[Tier.HIGH]


def episode(**kw: object) -> Episode:
    fields: dict[str, object] = {
        "code": "ABCDEF",
        "opened_by_event": UUID(int=1),
        "reported_at": T0,
        "last_seen_at": T0,
        "category": Category.MISSING,
        "tier": Tier.HIGH,
        **kw,
    }
    return Episode.model_validate(fields)


def ids(steps: Sequence[Step]) -> list[str]:
    return [s.id for s in steps]


def test_steps_fall_due_after_last_seen_plus_delay() -> None:
    ep = episode()
    assert ids(timing.due_steps(HIGH, ep, T0)) == ["high-t0"]
    assert ids(timing.due_steps(HIGH, ep, T0 + minutes(29))) == ["high-t0"]
    assert ids(timing.due_steps(HIGH, ep, T0 + hours(2))) == ["high-t0", "high-t30m", "high-t2h"]


def test_fired_steps_are_never_due_again() -> None:
    ep = episode(fired={"high-t0": T0})
    assert ids(timing.due_steps(HIGH, ep, T0 + minutes(30))) == ["high-t30m"]


def test_acknowledgement_silences_only_unacknowledged_steps() -> None:
    ep = episode(fired={"high-t0": T0}, acknowledged_by={"sw-1": T0})
    assert ids(timing.pending_steps(HIGH, ep)) == ["high-t2h"]
    assert ids(timing.silenced_steps(HIGH, ep, T0 + hours(1))) == ["high-t30m"]
    assert timing.silenced_steps(HIGH, episode(), T0 + hours(1)) == []


def test_renotify_due_only_while_open_and_unacknowledged() -> None:
    target = Renotify(
        step_id="high-t0", roles=("duty_social_worker",), channels=(), template="x", base_at=T0
    )
    assert timing.renotify_due_at(HIGH, episode()) is None
    assert timing.renotify_due_at(HIGH, episode(renotify=target)) == T0 + minutes(15)
    acked = episode(renotify=target, acknowledged_by={"sw-1": T0})
    assert timing.renotify_due_at(HIGH, acked) is None
    closed = episode(renotify=target, closed_at=T0)
    assert timing.renotify_due_at(HIGH, closed) is None
    quiet = Ladder(steps=HIGH.steps, renotify_every=None)
    assert timing.renotify_due_at(quiet, episode(renotify=target)) is None


def test_rhi_timers_run_from_the_return_until_an_interview_is_recorded() -> None:
    back = T0 + hours(1)
    closed = episode(returned_at=back, closed_at=back)
    assert [(s.step_id, due) for s, due in timing.pending_rhi(closed, ESCALATION)] == [
        ("rhi-reminder", back + hours(48)),
        ("rhi-overdue", back + hours(72)),
    ]
    assert [s.step_id for s in timing.due_rhi(closed, ESCALATION, back + hours(50))] == [
        "rhi-reminder"
    ]
    offered = episode(returned_at=back, closed_at=back, rhi_offered_on=date(2025, 3, 4))
    assert timing.pending_rhi(offered, ESCALATION) == []
    assert timing.pending_rhi(episode(), ESCALATION) == []


def test_next_due_at_is_the_earliest_pending_thing() -> None:
    target = Renotify(
        step_id="high-t0", roles=("duty_social_worker",), channels=(), template="x", base_at=T0
    )
    ep = episode(fired={"high-t0": T0}, renotify=target)
    assert timing.next_due_at(ep, ESCALATION) == T0 + minutes(15)
    acked = episode(fired={"high-t0": T0}, renotify=target, acknowledged_by={"a": T0})
    assert timing.next_due_at(acked, ESCALATION) == T0 + hours(2)
    done = episode(fired={s.id: T0 for s in HIGH.steps}, acknowledged_by={"a": T0})
    assert timing.next_due_at(done, ESCALATION) is None
    closed = episode(fired={"high-t0": T0}, returned_at=T0, closed_at=T0)
    assert timing.next_due_at(closed, ESCALATION) == T0 + hours(48)
