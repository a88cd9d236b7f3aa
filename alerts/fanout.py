"""Fan an alert out into one notification per recipient and channel. Pure.

The notification id (episode, step, recipient, channel) is the de-duplication key that dispatch
checks before sending, so a replayed alert can never produce a second SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from uuid import NAMESPACE_URL, uuid5

from alerts.ack_links import sign_link
from alerts.rota import Recipient, resolve_roles
from alerts.templates import alert_context, render
from config.policy import Policy
from schemas.alerts import Alert, Channel, Notification


def notification_id(alert: Alert, person_id: str, channel: Channel) -> str:
    return f"{alert.episode_code}:{alert.step_id}:{person_id}:{channel.value}"


def role_recipients(alert: Alert, policy: Policy) -> list[Recipient]:
    """Who the alert's roles resolve to, for its authority and force, at the time it was
    decided: fan-out and the rota-gap report must agree on it."""
    return resolve_roles(
        policy.rota,
        alert.roles,
        local_authority=alert.local_authority,
        police_force=alert.police_force,
        at=alert.occurred_at,
    )


def fan_out(
    alert: Alert,
    policy: Policy,
    *,
    base_url: str,
    link_secret: bytes,
    link_ttl: timedelta = timedelta(hours=48),
) -> list[Notification]:
    recipients = role_recipients(alert, policy)
    # Explicitly named people (a fallback to one person, say) come on top of the roles.
    named = {r.person_id for r in recipients}
    recipients += [
        Recipient(pid, policy.rota.people[pid], "named")
        for pid in alert.recipients
        if pid in policy.rota.people and pid not in named
    ]
    context = alert_context(alert, base_url=base_url, timezone=policy.rota.timezone)
    out: list[Notification] = []
    for rec in recipients:
        for channel in alert.channels:
            address = rec.person.phone if channel is Channel.SMS else rec.person.email
            if not address:
                continue
            # One-click acknowledgement link, signed for this person and this episode; its
            # expiry derives from the alert so a replay renders byte-identical messages.
            token = sign_link(
                link_secret, alert.episode_code, rec.person_id, alert.occurred_at + link_ttl
            )
            context["link"] = f"{base_url.rstrip('/')}/a/{token}"
            subject, body = render(policy.templates, alert, channel, context)
            nid = notification_id(alert, rec.person_id, channel)
            out.append(
                Notification(
                    event_id=uuid5(NAMESPACE_URL, f"missing-alerts:notification:{nid}"),
                    occurred_at=alert.occurred_at,
                    child_ref=alert.child_ref,
                    notification_id=nid,
                    alert_id=alert.alert_id,
                    episode_code=alert.episode_code,
                    recipient_id=rec.person_id,
                    channel=channel,
                    address=address,
                    subject=subject,
                    body=body,
                )
            )
    return out


@dataclass(frozen=True)
class Gap:
    """Something the rota could not do for an alert: an empty slot (a fallback contact stood in)
    or a person with no address for a channel the step uses (that message can never be sent)."""

    kind: Literal["slot_empty", "no_address"]
    role: str
    person_id: str
    channel: Channel | None = None


def rota_gaps(alert: Alert, policy: Policy) -> list[Gap]:
    recipients = role_recipients(alert, policy)
    gaps = [Gap("slot_empty", r.role, r.person_id) for r in recipients if r.fallback]
    people = [(r.role, r.person_id, r.person) for r in recipients] + [
        ("named", pid, policy.rota.people[pid])
        for pid in alert.recipients
        if pid in policy.rota.people
    ]
    for role, pid, person in people:
        for channel in alert.channels:
            if not (person.phone if channel is Channel.SMS else person.email):
                gaps.append(Gap("no_address", role, pid, channel))
    return gaps
