"""The ``notifications`` and ``people`` of ``GET /v1/episodes/{code}``: who was told about the
episode, as which role, on which channel, and where each message stands (issue 14).

Read on whichever worker answers, from its copy of the ``episode-notifications`` table
(alerts/notification_views.py), which holds no addresses. A phone number or an email address
is added only for keys with the ``contacts:read`` scope, from the rota in use now (so it is
the person's number today, which is the one a duty worker would ring). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alerts import notification_views
from config.policy import Person


def notifications(
    raw: bytes | None, people: dict[str, Person], *, contacts: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in notification_views.decode(raw):
        row: dict[str, Any] = {
            "notification_id": v.notification_id,
            "step_id": v.step_id,
            "kind": v.kind,
            "recipient_id": v.recipient_id,
            "role": v.role,
            "channel": v.channel.value,
            "status": v.status,
            "attempts": v.attempts,
            "first_attempt_at": v.first_attempt_at.isoformat(),
            "updated_at": v.updated_at.isoformat(),
            "next_attempt_at": v.next_attempt_at.isoformat() if v.next_attempt_at else None,
            "fallback_sent": v.fallback_sent,
        }
        if contacts:
            person = people.get(v.recipient_id)
            row["address"] = person.address(v.channel) if person else None
        out.append(row)
    return out


def display_names(ids: Iterable[str], people: dict[str, Person]) -> dict[str, str]:
    """Rota display names for the people an episode names (who was told, who acknowledged):
    the page shows "Duty social worker (night)", not a rota id. An id the rota no longer has
    (it was reloaded) is shown as itself."""
    return {pid: people[pid].display_name if pid in people else pid for pid in sorted(set(ids))}
