"""Risk tiering by the shipped config/risk.yaml rules (SPEC section 3, 'Risk')."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from schemas.common import RiskFlag, Tier
from streams.episodes.risk import assess_risk, assess_tier
from tests.unit.episode_helpers import T0, profile, shipped_policy

RULES = shipped_policy().risk


def tier(**kw: object) -> Tier:
    args: dict[str, object] = {
        "profile": profile(T0),
        "reported_flags": (),
        "immediate_danger": False,
        "last_seen_at": T0,
        **kw,
    }
    return assess_tier(RULES, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "flag",
    [
        RiskFlag.TRAFFICKING_SUSPECTED,
        RiskFlag.TRAFFICKING_IDENTIFIED,
        RiskFlag.NRM_REFERRAL,
        RiskFlag.CSE,
        RiskFlag.CCE,
        RiskFlag.COUNTY_LINES,
        RiskFlag.UASC,
        RiskFlag.URGENT_MEDICAL_NEED,
    ],
)
def test_high_flags_from_profile_or_report(flag: RiskFlag) -> None:
    assert tier(profile=profile(T0, flags=[flag])) is Tier.HIGH
    assert tier(reported_flags=[flag]) is Tier.HIGH


def test_immediate_danger_is_high() -> None:
    assert tier(immediate_danger=True) is Tier.HIGH


def test_no_profile_is_high() -> None:
    assessment = assess_risk(
        RULES, profile=None, reported_flags=(), immediate_danger=False, last_seen_at=T0
    )
    assert assessment.tier is Tier.HIGH and assessment.reasons == ("profile_missing",)


def test_under_13_on_the_day_last_seen_is_high() -> None:
    thirteenth = date(2012, 3, 3)  # 13th birthday on T0's date
    assert tier(profile=profile(T0, dob=thirteenth)) is Tier.STANDARD
    assert tier(profile=profile(T0, dob=thirteenth + timedelta(days=1))) is Tier.HIGH


def test_other_concerns_is_medium() -> None:
    assert tier(reported_flags=[RiskFlag.OTHER_CONCERNS]) is Tier.MEDIUM


def test_previous_episode_within_30_days_is_medium() -> None:
    assert tier(previous_episode_starts=[T0 - timedelta(days=29)]) is Tier.MEDIUM
    assert tier(previous_episode_starts=[T0 - timedelta(days=31)]) is Tier.STANDARD
    assert tier(previous_episode_starts=[T0]) is Tier.STANDARD  # itself does not count


def test_reasons_name_every_high_fact() -> None:
    assessment = assess_risk(
        RULES,
        profile=profile(T0, flags=[RiskFlag.CSE]),
        reported_flags=[RiskFlag.UASC],
        immediate_danger=True,
        last_seen_at=T0,
    )
    assert assessment.reasons == (
        "flag:child_sexual_exploitation",
        "flag:unaccompanied_asylum_seeking",
        "immediate_danger",
    )


def test_plain_profile_is_standard() -> None:
    assessment = assess_risk(
        RULES, profile=profile(T0), reported_flags=(), immediate_danger=False, last_seen_at=T0
    )
    assert assessment.tier is Tier.STANDARD and assessment.reasons == ()
