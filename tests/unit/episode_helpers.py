"""Builders shared by the episode-engine tests: events, small policies and a driver.

Every builder takes the times it needs explicitly; nothing reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

from config import Policy, load_policy
from config.policy import EscalationPolicy, Ladder, Role, Step
from schemas.alerts import Alert, AlertKind, Channel
from schemas.common import Category, Reporter, RiskFlag, Tier
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
from schemas.records import EpisodeRecord
from streams.episodes.machine import apply
from streams.episodes.state import ChildState, Effects

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday morning
CHILD = "C123"
CARER = Reporter(role="carer")
DOB_15 = date(2010, 1, 1)  # 15 at T0: neither under 13 nor 18


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@cache
def shipped_policy() -> Policy:
    return load_policy(CONFIG_DIR)


def step(
    step_id: str,
    after: timedelta,
    roles: Iterable[Role],
    *,
    until_ack: bool = True,
    kind: AlertKind = AlertKind.ESCALATION,
) -> Step:
    return Step(
        id=step_id,
        after=after,
        roles=tuple(roles),
        channels=(Channel.SMS,),
        until_acknowledged=until_ack,
        kind=kind,
        template="escalation",
    )


def policy_with(ladders: dict[Tier, Ladder], base: Policy | None = None) -> Policy:
    """The shipped policy with its ladders swapped, for tests that want short, readable delays."""
    base = base or shipped_policy()
    escalation = EscalationPolicy.model_validate({**base.escalation.model_dump(), "tiers": ladders})
    return Policy(risk=base.risk, escalation=escalation, rota=base.rota, templates=base.templates)


def small_policy() -> Policy:
    """Three tiers with distinct step ids; the high ladder re-notifies every 10 minutes."""
    dsw, tm, police, sm = (
        Role.DUTY_SOCIAL_WORKER,
        Role.TEAM_MANAGER,
        Role.POLICE_LIAISON,
        Role.SERVICE_MANAGER,
    )
    return policy_with(
        {
            Tier.HIGH: Ladder(
                steps=(
                    step("h0", minutes(0), [dsw, police]),
                    step("h10", minutes(10), [tm]),
                    step("h30", minutes(30), [sm], until_ack=False, kind=AlertKind.STILL_MISSING),
                ),
                renotify_every=minutes(10),
            ),
            Tier.MEDIUM: Ladder(
                steps=(
                    step("m0", minutes(0), [dsw]),
                    step("m20", minutes(20), [police]),
                    step("m60", minutes(60), [tm], until_ack=False, kind=AlertKind.STILL_MISSING),
                ),
                renotify_every=minutes(15),
            ),
            Tier.STANDARD: Ladder(
                steps=(
                    step("s5", minutes(5), [dsw]),
                    step("s40", minutes(40), [police, tm]),
                    step("s90", minutes(90), [tm], until_ack=False, kind=AlertKind.STILL_MISSING),
                ),
                renotify_every=None,
            ),
        }
    )


# ----------------------------------------------------------------------------- events


def profile(
    at: datetime = T0,
    *,
    flags: Iterable[RiskFlag] = (),
    dob: date = DOB_15,
    child: str = CHILD,
    event_id: UUID | None = None,
) -> ChildProfile:
    return ChildProfile(
        event_id=event_id or uuid4(),
        occurred_at=at,
        child_ref=child,
        initials="JD",
        date_of_birth=dob,
        local_authority="LA-EXAMPLE",
        police_force="FORCE-EXAMPLE",
        risk_flags=frozenset(flags),
        full_name="Jane Doe",
        address="1 Secret Street",
        medical_notes="asthma",
    )


def absence(
    last_seen_at: datetime,
    at: datetime | None = None,
    *,
    category: Category = Category.MISSING,
    flags: Iterable[RiskFlag] = (),
    immediate_danger: bool = False,
    child: str = CHILD,
    event_id: UUID | None = None,
) -> AbsenceReported:
    return AbsenceReported(
        event_id=event_id or uuid4(),
        occurred_at=at or last_seen_at,
        child_ref=child,
        last_seen_at=last_seen_at,
        category=category,
        reporter=CARER,
        reported_flags=frozenset(flags),
        immediate_danger=immediate_danger,
        circumstances="left after an argument, wearing a red coat",
    )


def check_in(seen_at: datetime, *, present: bool = True, child: str = CHILD) -> CheckIn:
    return CheckIn(
        occurred_at=seen_at,
        child_ref=child,
        seen_at=seen_at,
        reporter=CARER,
        present_at_placement=present,
    )


def update(
    at: datetime,
    kind: Literal["sighting", "information", "category", "risk"],
    *,
    code: str | None = None,
    category: Category | None = None,
    flags: Iterable[RiskFlag] = (),
    immediate_danger: bool = False,
    child: str = CHILD,
) -> EpisodeUpdate:
    return EpisodeUpdate(
        occurred_at=at,
        child_ref=child,
        episode_code=code,
        kind=kind,
        category=category,
        added_flags=frozenset(flags),
        immediate_danger=immediate_danger,
        reporter=CARER,
        note="seen near the station",
    )


def ack(at: datetime, code: str, recipient: str = "sw-1", *, child: str = CHILD) -> Acknowledgement:
    return Acknowledgement(
        occurred_at=at, child_ref=child, episode_code=code, recipient_id=recipient, via="sms"
    )


def returned(
    returned_at: datetime,
    at: datetime | None = None,
    *,
    code: str | None = None,
    how: Literal["returned", "found"] = "returned",
    child: str = CHILD,
) -> ReturnReported:
    return ReturnReported(
        occurred_at=at or returned_at,
        child_ref=child,
        returned_at=returned_at,
        how=how,
        reporter=CARER,
        episode_code=code,
    )


def rhi(at: datetime, code: str, *, accepted: bool | None = None) -> ReturnInterviewRecorded:
    return ReturnInterviewRecorded(
        occurred_at=at, child_ref=CHILD, episode_code=code, offered_on=at.date(), accepted=accepted
    )


def timer(at: datetime, code: str = "ABCD", *, child: str = CHILD) -> TimerDue:
    return TimerDue(occurred_at=at, child_ref=child, episode_code=code, due_at=at)


# ----------------------------------------------------------------------------- driver


@dataclass
class Driver:
    """Feeds events through apply, keeping the state and every effect for assertions."""

    policy: Policy = field(default_factory=shipped_policy)
    state: ChildState | None = None
    alerts: list[Alert] = field(default_factory=list)
    records: list[EpisodeRecord] = field(default_factory=list)

    def send(self, event: InputEvent, now: datetime) -> Effects:
        self.state, effects = apply(self.state, event, now, self.policy)
        self.alerts.extend(effects.alerts)
        self.records.extend(effects.records)
        return effects

    def tick(self, now: datetime) -> Effects:
        return self.send(timer(now, self.code if self.has_open else "ABCD"), now)

    @property
    def has_open(self) -> bool:
        return self.state is not None and self.state.open_episode is not None

    @property
    def code(self) -> str:
        assert self.state is not None and self.state.open_episode is not None
        return self.state.open_episode.code

    def step_ids(self, code: str | None = None) -> list[str]:
        return [a.step_id for a in self.alerts if code is None or a.episode_code == code]

    def actions(self, code: str | None = None) -> list[str]:
        return [r.action for r in self.records if code is None or r.episode_code == code]


def step_ids(effects: Effects) -> list[str]:
    return [a.step_id for a in effects.alerts]


def actions(effects: Effects) -> list[str]:
    return [r.action for r in effects.records]


def detail_of(effects: Effects, action: str) -> dict[str, Any]:
    return next(r.detail.as_dict() for r in effects.records if r.action == action)
