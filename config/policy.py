"""The operational policy as validated models: risk rules, escalation ladders, rota, templates.

Pure: data and checks only. Reading the files is config/loading.py's job. Cross-file checks (a
ladder naming a template that does not exist, a rota naming a person nobody defined, a police
route with no police contact) are functions here, so a typo fails at start-up rather than at
3 a.m. when the step is due.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.durations import Duration
from schemas.alerts import AlertKind, Channel
from schemas.common import RiskFlag, Tier


class Role(StrEnum):
    DUTY_SOCIAL_WORKER = "duty_social_worker"
    TEAM_MANAGER = "team_manager"
    OUT_OF_HOURS_TEAM = "out_of_hours_team"
    SERVICE_MANAGER = "service_manager"
    POLICE_LIAISON = "police_liaison"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- risk.yaml


class RiskRules(_Strict):
    """Which facts make an episode high or medium risk (SPEC 3, 'Risk')."""

    high_flags: frozenset[RiskFlag]
    high_under_age: int = Field(ge=0, le=18)
    high_when_immediate_danger: bool = True
    high_when_profile_missing: bool = True
    medium_flags: frozenset[RiskFlag] = frozenset()
    medium_previous_episodes: int = Field(default=1, ge=1)
    medium_previous_window: Duration = timedelta(days=30)


# ---------------------------------------------------------- escalation.yaml


class Step(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    after: Duration = Field(description="Delay after the child was last seen.")
    roles: tuple[Role, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    until_acknowledged: bool = Field(
        description="True: skipped once anyone acknowledges. False: a still-missing milestone."
    )
    kind: AlertKind = AlertKind.ESCALATION
    template: str


class Ladder(_Strict):
    steps: tuple[Step, ...] = Field(min_length=1)
    renotify_every: Duration | None = None

    @model_validator(mode="after")
    def _ordered_unique(self) -> Ladder:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids must be unique, got {ids}")
        afters = [s.after for s in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps must be listed in order of 'after'")
        if self.renotify_every is not None and self.renotify_every <= timedelta(0):
            raise ValueError("renotify_every must be positive")
        return self


class Notice(_Strict):
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: str


class LateReport(_Strict):
    """Who hears of an episode recorded after the child was already back (one notice, no
    ladder: docs/episode-engine.md)."""

    roles: tuple[Role, ...] = Field(default=(Role.DUTY_SOCIAL_WORKER,), min_length=1)
    channels: tuple[Channel, ...] = Field(default=(Channel.EMAIL,), min_length=1)
    template: str = "late_report"


class ReturnHomeInterview(_Strict):
    due_within: Duration
    reminder_after: Duration
    reminder_roles: tuple[Role, ...] = Field(min_length=1)
    overdue_roles: tuple[Role, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    reminder_template: str
    overdue_template: str

    @model_validator(mode="after")
    def _reminder_first(self) -> ReturnHomeInterview:
        if self.reminder_after >= self.due_within:
            raise ValueError("reminder_after must be shorter than due_within")
        return self


class RepeatEpisodes(_Strict):
    count: int = Field(ge=2)
    window: Duration
    roles: tuple[Role, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = Field(min_length=1)
    template: str


class CancelNotice(_Strict):
    """What everyone already told hears when a false report is cancelled (issue 14)."""

    channels: tuple[Channel, ...] = Field(default=(Channel.SMS, Channel.EMAIL), min_length=1)
    template: str = "cancelled"


class EscalationPolicy(_Strict):
    tiers: dict[Tier, Ladder]
    return_notice: Notice
    return_home_interview: ReturnHomeInterview
    repeat_episodes: RepeatEpisodes
    late_report: LateReport = Field(default_factory=LateReport)
    cancel_notice: CancelNotice = Field(default_factory=CancelNotice)
    tier_raised_template: str = "tier_raised"

    @field_validator("tiers")
    @classmethod
    def _every_tier(cls, tiers: dict[Tier, Ladder]) -> dict[Tier, Ladder]:
        missing = [t.value for t in Tier if t not in tiers]
        if missing:
            raise ValueError(f"a ladder is required for every tier; missing {missing}")
        return tiers

    def template_names(self) -> set[tuple[str, Channel]]:
        used: set[tuple[str, Channel]] = set()
        for ladder in self.tiers.values():
            for step in ladder.steps:
                used.update((step.template, c) for c in step.channels)
        rhi = self.return_home_interview
        for name in (rhi.reminder_template, rhi.overdue_template):
            used.update((name, c) for c in rhi.channels)
        used.update((self.return_notice.template, c) for c in self.return_notice.channels)
        used.update((self.repeat_episodes.template, c) for c in self.repeat_episodes.channels)
        used.update((self.late_report.template, c) for c in self.late_report.channels)
        used.update((self.cancel_notice.template, c) for c in self.cancel_notice.channels)
        return used


# ----------------------------------------------------------------- rota.yaml

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Person(_Strict):
    display_name: str
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if not (self.phone or self.email):
            raise ValueError("a person needs a phone or an email")
        return self

    def address(self, channel: Channel) -> str | None:
        """Where a message on ``channel`` reaches this person, if anywhere."""
        return self.phone if channel is Channel.SMS else self.email


class OfficeHours(_Strict):
    weekdays: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(17, 0)


class Slot(_Strict):
    """Who holds a role: ``always``, or split between office hours and out of hours."""

    always: tuple[str, ...] = ()
    office_hours: tuple[str, ...] = ()
    out_of_hours: tuple[str, ...] = ()

    def people(self) -> set[str]:
        return {*self.always, *self.office_hours, *self.out_of_hours}


class LocalAuthorityRota(_Strict):
    office_hours: OfficeHours = OfficeHours()
    bank_holidays: tuple[date, ...] = ()
    roles: dict[Role, Slot]
    fallback: str
    police_contact: str | None = Field(
        default=None,
        description=(
            "Who stands in for the police liaison when a child's force is unknown (no profile, "
            "or a force not in this rota). Required when any ladder routes to the police."
        ),
    )


class PoliceForceRota(_Strict):
    police_liaison: tuple[str, ...]
    fallback: str


class Rota(_Strict):
    timezone: str = "Europe/London"
    people: dict[str, Person]
    local_authorities: dict[str, LocalAuthorityRota] = Field(min_length=1)
    police_forces: dict[str, PoliceForceRota] = {}
    default_local_authority: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> Rota:
        if self.default_local_authority not in self.local_authorities:
            raise ValueError(
                f"default_local_authority {self.default_local_authority!r} is not defined"
            )
        for la_name, la in self.local_authorities.items():
            named = {la.fallback, *([la.police_contact] if la.police_contact else [])}
            for slot in la.roles.values():
                named |= slot.people()
            self._check_people(f"local_authorities.{la_name}", named)
        for force_name, force in self.police_forces.items():
            self._check_people(
                f"police_forces.{force_name}", {force.fallback, *force.police_liaison}
            )
        return self

    def _check_people(self, where: str, named: set[str]) -> None:
        unknown = sorted(named - self.people.keys())
        if unknown:
            raise ValueError(f"{where} names people not defined under 'people': {unknown}")


# ----------------------------------------------------------------- templates


class Templates:
    """Compiled templates by (name, channel); sandboxed and strict about undefined variables."""

    def __init__(self, sources: dict[tuple[str, Channel], str]) -> None:
        self._env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self.sources = dict(sources)
        self._compiled = {key: self._env.from_string(src) for key, src in sources.items()}

    def has(self, name: str, channel: Channel) -> bool:
        return (name, channel) in self._compiled

    def render(self, name: str, channel: Channel, context: dict[str, Any]) -> str:
        return self._compiled[(name, channel)].render(**context).strip()


# -------------------------------------------------------------------- policy


class Policy:
    """Everything loaded from the policy directory, already cross-checked."""

    def __init__(
        self, risk: RiskRules, escalation: EscalationPolicy, rota: Rota, templates: Templates
    ) -> None:
        self.risk = risk
        self.escalation = escalation
        self.rota = rota
        self.templates = templates


def police_routing_gaps(escalation: EscalationPolicy, rota: Rota) -> list[str]:
    """Local authorities with no police contact although some step notifies the police
    liaison: a child with no profile there would reach no police officer."""
    roles = {r for ladder in escalation.tiers.values() for s in ladder.steps for r in s.roles}
    roles |= set(escalation.repeat_episodes.roles)
    rhi = escalation.return_home_interview
    roles |= {*rhi.reminder_roles, *rhi.overdue_roles}
    if Role.POLICE_LIAISON not in roles:
        return []
    return sorted(name for name, la in rota.local_authorities.items() if not la.police_contact)
