"""Plan an alert's messages: one notification per recipient and channel, and the rota gaps. Pure.

The notification id (episode, step, recipient, channel) is the de-duplication key that dispatch
checks before sending, so a replayed alert can never produce a second SMS. Each message is
rendered on its own: a template or address that fails for one recipient costs that message (it
is reported as a failure, for the dead-letter topic) and never the others of the alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from uuid import NAMESPACE_URL, uuid5

from alerts.ack_links import sign_link, sign_rhi_link
from alerts.rota import GapKind, Recipient, resolve_roles
from alerts.templates import alert_context, render
from config.policy import Policy
from schemas.alerts import Alert, AlertKind, Channel, Notification


@dataclass(frozen=True)
class Links:
    """How signed links in messages are made: acknowledgement links (``/a/``) expire with
    ``ttl``; return home interview links (``/r/``) last ``rhi_ttl``, as an interview is often
    recorded days after the reminder."""

    base_url: str
    secret: bytes
    ttl: timedelta = timedelta(hours=48)
    rhi_ttl: timedelta = timedelta(days=14)


# Alerts about a return home interview link to its form: acknowledging a closed episode means
# nothing, recording the interview is what stops the overdue step.
RHI_KINDS = frozenset({AlertKind.RHI_REMINDER, AlertKind.RHI_OVERDUE})


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


@dataclass(frozen=True)
class Gap:
    """Something the rota could not do for an alert: a slot filled by a stand-in ("slot_empty":
    the area's fallback; "force_unknown": the authority's police contact), or a person with no
    address for a channel the step uses ("no_address": that message can never be sent)."""

    kind: GapKind | Literal["no_address"]
    role: str
    person_id: str
    channel: Channel | None = None


@dataclass(frozen=True)
class Unrendered:
    """A message that could not be built; the reason is an exception type, never its text
    (a template error can quote the context)."""

    person_id: str
    channel: Channel
    error: str


@dataclass
class Plan:
    notifications: list[Notification] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    failures: list[Unrendered] = field(default_factory=list)


def plan(alert: Alert, policy: Policy, links: Links) -> Plan:
    out = Plan()
    recipients = role_recipients(alert, policy)
    out.gaps += [Gap(r.gap, r.role, r.person_id) for r in recipients if r.gap is not None]
    # Explicitly named people (a fallback to one person, say) come on top of the roles.
    named = {r.person_id for r in recipients}
    recipients += [
        Recipient(pid, policy.rota.people[pid], "named")
        for pid in alert.recipients
        if pid in policy.rota.people and pid not in named
    ]
    context = alert_context(alert, base_url=links.base_url, timezone=policy.rota.timezone)
    for rec in recipients:
        for channel in alert.channels:
            address = rec.person.address(channel)
            if not address:
                out.gaps.append(Gap("no_address", rec.role, rec.person_id, channel))
                continue
            try:
                message = _message(policy, alert, rec, channel, address, context, links)
                out.notifications.append(message)
            except Exception as exc:  # one recipient's message, not the alert
                out.failures.append(Unrendered(rec.person_id, channel, type(exc).__name__))
    return out


def _message(
    policy: Policy,
    alert: Alert,
    rec: Recipient,
    channel: Channel,
    address: str,
    context: dict[str, Any],
    links: Links,
) -> Notification:
    context["link"] = _link(alert, rec.person_id, links)
    subject, body = render(policy.templates, alert, channel, context)
    nid = notification_id(alert, rec.person_id, channel)
    return Notification(
        event_id=uuid5(NAMESPACE_URL, f"missing-alerts:notification:{nid}"),
        occurred_at=alert.occurred_at,
        child_ref=alert.child_ref,
        notification_id=nid,
        alert_id=alert.alert_id,
        episode_code=alert.episode_code,
        recipient_id=rec.person_id,
        role=rec.role,
        channel=channel,
        address=address,
        subject=subject,
        body=body,
    )


def _link(alert: Alert, person_id: str, links: Links) -> str:
    """Signed for this person and this episode; the expiry derives from the alert, so a replay
    renders byte-identical messages."""
    base = links.base_url.rstrip("/")
    if alert.kind in RHI_KINDS:
        expires = alert.occurred_at + links.rhi_ttl
        return f"{base}/r/{sign_rhi_link(links.secret, alert.episode_code, person_id, expires)}"
    token = sign_link(links.secret, alert.episode_code, person_id, alert.occurred_at + links.ttl)
    return f"{base}/a/{token}"


def fan_out(alert: Alert, policy: Policy, links: Links) -> list[Notification]:
    """The messages of an alert (tests and tools; dispatch uses the whole plan)."""
    return plan(alert, policy, links).notifications


def rota_gaps(alert: Alert, policy: Policy, links: Links | None = None) -> list[Gap]:
    return plan(alert, policy, links or Links("http://localhost", b"-")).gaps
