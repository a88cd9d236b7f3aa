from __future__ import annotations

from datetime import UTC, datetime

from alerts.rota import in_office_hours, resolve_role, resolve_roles
from config import load_policy
from config.policy import LocalAuthorityRota, Role, Rota, Slot
from config.settings import POLICY_DIR

ROTA = load_policy(POLICY_DIR).rota
LA = ROTA.local_authorities["LA-EXAMPLE"]


def people(
    role: Role, at: datetime, la: str | None = "LA-EXAMPLE", force: str | None = None
) -> list[str]:
    return [
        r.person_id for r in resolve_role(ROTA, role, local_authority=la, police_force=force, at=at)
    ]


def test_office_hours_in_winter_gmt() -> None:
    # Wed 25 Nov 2026 09:30 UTC == 09:30 GMT: office hours.
    assert people(Role.DUTY_SOCIAL_WORKER, datetime(2026, 11, 25, 9, 30, tzinfo=UTC)) == ["dsw-day"]
    # 17:00 local is the end: out of hours.
    assert people(Role.DUTY_SOCIAL_WORKER, datetime(2026, 11, 25, 17, 0, tzinfo=UTC)) == ["edt"]


def test_office_hours_follow_british_summer_time() -> None:
    # Wed 1 Jul 2026 08:30 UTC == 09:30 BST: office hours; 16:30 UTC == 17:30 BST: not.
    assert in_office_hours(LA, datetime(2026, 7, 1, 8, 30, tzinfo=UTC), "Europe/London")
    assert not in_office_hours(LA, datetime(2026, 7, 1, 16, 30, tzinfo=UTC), "Europe/London")
    # Same UTC instant in winter is 08:30 GMT: before office hours.
    assert not in_office_hours(LA, datetime(2026, 12, 2, 8, 30, tzinfo=UTC), "Europe/London")


def test_weekends_and_bank_holidays_are_out_of_hours() -> None:
    assert people(Role.DUTY_SOCIAL_WORKER, datetime(2026, 11, 28, 11, 0, tzinfo=UTC)) == ["edt"]
    # Friday 25 Dec 2026 is listed as a bank holiday.
    assert people(Role.DUTY_SOCIAL_WORKER, datetime(2026, 12, 25, 11, 0, tzinfo=UTC)) == ["edt"]


def test_police_liaison_by_force_and_fallback() -> None:
    at = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert people(Role.POLICE_LIAISON, at, force="FORCE-EXAMPLE") == ["pl-1"]
    for force in ("NOPE", None):  # a force the rota does not know, or no profile at all
        unknown = resolve_role(
            ROTA, Role.POLICE_LIAISON, local_authority="LA-EXAMPLE", police_force=force, at=at
        )
        # The authority's police contact, never the duty social worker; counted as a gap.
        assert [(r.person_id, r.gap) for r in unknown] == [("police-desk", "force_unknown")]


def test_unprofiled_child_at_night_reaches_a_police_contact_and_the_duty_team() -> None:
    """Finding 4 of issue #10: the unknown force fell back to the emergency duty team, which is
    also the out-of-hours duty social worker, and the two merged into one person."""
    at = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # Saturday night: edt is on duty
    recs = resolve_roles(
        ROTA,
        ("duty_social_worker", "police_liaison"),
        local_authority="LA-EXAMPLE",
        police_force=None,
        at=at,
    )
    assert [(r.person_id, r.role) for r in recs] == [
        ("edt", "duty_social_worker"),
        ("police-desk", "police_liaison"),
    ]


def test_empty_slot_uses_fallback_contact() -> None:
    la = LocalAuthorityRota(roles={Role.TEAM_MANAGER: Slot()}, fallback="edt")
    rota = Rota.model_validate(
        {**ROTA.model_dump(), "local_authorities": {"LA-EXAMPLE": la.model_dump()}}
    )
    recs = resolve_role(
        rota,
        Role.TEAM_MANAGER,
        local_authority="LA-EXAMPLE",
        police_force=None,
        at=datetime(2026, 11, 25, 11, 0, tzinfo=UTC),
    )
    assert [(r.person_id, r.fallback) for r in recs] == [("edt", True)]


def test_unknown_local_authority_uses_default_and_people_are_deduplicated() -> None:
    at = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # Saturday night
    recs = resolve_roles(
        ROTA,
        ("duty_social_worker", "out_of_hours_team", "team_manager"),
        local_authority="ELSEWHERE",
        police_force=None,
        at=at,
    )
    assert [r.person_id for r in recs] == ["edt", "tm-1"]
