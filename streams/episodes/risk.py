"""Risk tiering from the profile, the report and history, by the rules in config/risk.yaml."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from config.policy import RiskRules
from schemas.common import RiskFlag, Tier
from schemas.events import ChildProfile
from streams.episodes.state import age_on


@dataclass(frozen=True)
class Assessment:
    """A tier with the reasons for it, so the audit record can say why without personal data."""

    tier: Tier
    reasons: tuple[str, ...]


def assess_risk(
    rules: RiskRules,
    *,
    profile: ChildProfile | None,
    reported_flags: Iterable[RiskFlag],
    immediate_danger: bool,
    last_seen_at: datetime,
    previous_episode_starts: Iterable[datetime] = (),
) -> Assessment:
    flags = set(reported_flags) | (set(profile.risk_flags) if profile else set())
    high = _high_reasons(rules, flags, profile, immediate_danger, last_seen_at)
    if high:
        return Assessment(Tier.HIGH, high)
    medium = _medium_reasons(rules, flags, last_seen_at, previous_episode_starts)
    if medium:
        return Assessment(Tier.MEDIUM, medium)
    return Assessment(Tier.STANDARD, ())


def assess_tier(
    rules: RiskRules,
    *,
    profile: ChildProfile | None,
    reported_flags: Iterable[RiskFlag],
    immediate_danger: bool,
    last_seen_at: datetime,
    previous_episode_starts: Iterable[datetime] = (),
) -> Tier:
    return assess_risk(
        rules,
        profile=profile,
        reported_flags=reported_flags,
        immediate_danger=immediate_danger,
        last_seen_at=last_seen_at,
        previous_episode_starts=previous_episode_starts,
    ).tier


def _high_reasons(
    rules: RiskRules,
    flags: set[RiskFlag],
    profile: ChildProfile | None,
    immediate_danger: bool,
    last_seen_at: datetime,
) -> tuple[str, ...]:
    reasons = [f"flag:{flag.value}" for flag in sorted(flags & rules.high_flags)]
    if immediate_danger and rules.high_when_immediate_danger:
        reasons.append("immediate_danger")
    if profile is None and rules.high_when_profile_missing:
        reasons.append("profile_missing")
    # Age on the day last seen: the day the risk to this child began.
    if profile is not None and age_on(profile.date_of_birth, last_seen_at.date()) < (
        rules.high_under_age
    ):
        reasons.append(f"under_{rules.high_under_age}")
    return tuple(reasons)


def _medium_reasons(
    rules: RiskRules,
    flags: set[RiskFlag],
    last_seen_at: datetime,
    previous_episode_starts: Iterable[datetime],
) -> tuple[str, ...]:
    reasons = [f"flag:{flag.value}" for flag in sorted(flags & rules.medium_flags)]
    window_start = last_seen_at - rules.medium_previous_window
    recent = [s for s in previous_episode_starts if window_start <= s < last_seen_at]
    if len(recent) >= rules.medium_previous_episodes:
        reasons.append("previous_episodes")
    return tuple(reasons)
