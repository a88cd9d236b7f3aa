"""Who is on duty: roles to people, from config/rota.yaml, at a given instant.

Pure and clock-free (the instant is an argument). Office hours are judged in the rota's own
timezone (Europe/London by default), so the boundary moves correctly across the clock changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from config.policy import LocalAuthorityRota, Person, Role, Rota

GapKind = Literal["slot_empty", "force_unknown"]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Recipient:
    person_id: str
    person: Person
    role: str
    # Why someone other than the role's holder stands in, or None: "slot_empty" (nobody holds
    # the role now: the area's fallback), "force_unknown" (the child's police force is not in
    # the rota: the local authority's default police contact). Every such case is a rota gap.
    gap: GapKind | None = None

    @property
    def fallback(self) -> bool:
        return self.gap is not None


def in_office_hours(la: LocalAuthorityRota, at: datetime, timezone: str) -> bool:
    local = at.astimezone(ZoneInfo(timezone))
    if local.date() in la.bank_holidays:
        return False
    if _WEEKDAYS[local.weekday()] not in la.office_hours.weekdays:
        return False
    return la.office_hours.start <= local.time().replace(tzinfo=None) < la.office_hours.end


def resolve_role(
    rota: Rota, role: Role, *, local_authority: str | None, police_force: str | None, at: datetime
) -> list[Recipient]:
    """People holding ``role`` at ``at``; the area's fallback contact when the slot is empty."""
    la_name = local_authority if local_authority in rota.local_authorities else None
    la = rota.local_authorities[la_name or rota.default_local_authority]
    if role is Role.POLICE_LIAISON:
        return _police(rota, la, police_force)
    slot = la.roles.get(role)
    people: tuple[str, ...] = ()
    if slot is not None:
        office = in_office_hours(la, at, rota.timezone)
        people = slot.always or (slot.office_hours if office else slot.out_of_hours)
    if not people:
        return [_recipient(rota, la.fallback, role, gap="slot_empty")]
    return [_recipient(rota, pid, role) for pid in people]


def _police(rota: Rota, la: LocalAuthorityRota, police_force: str | None) -> list[Recipient]:
    """The force's liaison; with no force on record (no profile, or a force the rota does not
    know) the authority's own police contact, never the duty social worker: a high-risk child
    must reach the police whatever the paperwork says."""
    role = Role.POLICE_LIAISON
    force = rota.police_forces.get(police_force or "")
    if force is None:
        contact = la.police_contact or la.fallback  # validation requires police_contact
        return [_recipient(rota, contact, role, gap="force_unknown")]
    if force.police_liaison:
        return [_recipient(rota, pid, role) for pid in force.police_liaison]
    return [_recipient(rota, force.fallback, role, gap="slot_empty")]


def resolve_roles(
    rota: Rota,
    roles: tuple[str, ...],
    *,
    local_authority: str | None,
    police_force: str | None,
    at: datetime,
) -> list[Recipient]:
    """All people for all roles, each person once (first role wins), in a stable order."""
    seen: dict[str, Recipient] = {}
    for role_name in roles:
        for rec in resolve_role(
            rota,
            Role(role_name),
            local_authority=local_authority,
            police_force=police_force,
            at=at,
        ):
            seen.setdefault(rec.person_id, rec)
    return list(seen.values())


def _recipient(rota: Rota, person_id: str, role: Role, *, gap: GapKind | None = None) -> Recipient:
    return Recipient(person_id, rota.people[person_id], role.value, gap)
