from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.ack_links import verify_link
from alerts.fanout import Gap, Links, fan_out, rota_gaps
from config import load_policy
from config.policy import Person, Policy, Role, Slot
from config.settings import POLICY_DIR
from schemas.alerts import Alert, AlertKind, Channel
from schemas.common import Category, Tier

POLICY = load_policy(POLICY_DIR)
SECRET = b"test-link-secret"
NOW = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # Wednesday, office hours


def alert(**overrides: object) -> Alert:
    fields: dict[str, object] = dict(
        occurred_at=NOW,
        child_ref="C123",
        alert_id="K7Q2MD:high-t0",
        kind=AlertKind.ABSENCE_REPORTED,
        episode_code="K7Q2MD",
        step_id="high-t0",
        tier=Tier.HIGH,
        category=Category.MISSING,
        roles=("duty_social_worker", "police_liaison"),
        channels=(Channel.SMS, Channel.EMAIL),
        template="absence_reported",
        local_authority="LA-EXAMPLE",
        police_force="FORCE-EXAMPLE",
        initials="JD",
        last_seen_at=NOW - timedelta(minutes=20),
        reported_at=NOW,
    )
    fields.update(overrides)
    return Alert.model_validate(fields)


def test_one_notification_per_recipient_and_channel() -> None:
    notes = fan_out(alert(), POLICY, Links("https://ma.example.org", SECRET))
    assert sorted(n.notification_id for n in notes) == [
        "K7Q2MD:high-t0:dsw-day:email",
        "K7Q2MD:high-t0:dsw-day:sms",
        "K7Q2MD:high-t0:pl-1:email",
        "K7Q2MD:high-t0:pl-1:sms",
    ]
    # Deterministic: replaying an alert yields identical notifications (the dedupe key holds).
    assert fan_out(alert(), POLICY, Links("https://ma.example.org", SECRET)) == notes


def test_sms_is_minimal_and_fits_two_segments() -> None:
    sms = [
        n
        for n in fan_out(alert(), POLICY, Links("https://ma.example.org", SECRET))
        if n.channel is Channel.SMS
    ]
    body = sms[0].body
    for needed in (
        "C123",
        "JD",
        "MISSING",
        "HIGH",
        "ACK K7Q2MD",
        "10:40",
        "https://ma.example.org/a/",
    ):
        assert needed in body
    assert len(body) <= 306, len(body)
    assert "2011" not in body  # no date of birth in SMS
    token = body.rsplit("/a/", 1)[1]
    claim = verify_link(SECRET, token, NOW)
    assert claim is not None and claim.episode_code == "K7Q2MD"
    assert claim.recipient_id == sms[0].recipient_id


def test_email_has_subject_and_body() -> None:
    email = next(
        n
        for n in fan_out(alert(), POLICY, Links("https://x", SECRET))
        if n.channel is Channel.EMAIL
    )
    assert email.subject == "[HIGH] MISSING: C123 (JD) - episode K7Q2MD"
    assert "Risk tier: high" in email.body


def test_missing_profile_is_said() -> None:
    notes = fan_out(alert(profile_missing=True, initials=None), POLICY, Links("https://x", SECRET))
    assert all("NO PROFILE" in n.body or "No Philomena profile" in n.body for n in notes)


def test_rota_gaps_report_empty_slots_and_missing_addresses() -> None:
    assert rota_gaps(alert(), POLICY) == []
    people = dict(POLICY.rota.people)
    people["pl-1"] = Person(display_name="Liaison, no email", phone="+447700900105")
    la = POLICY.rota.local_authorities["LA-EXAMPLE"].model_copy(
        update={"roles": {Role.DUTY_SOCIAL_WORKER: Slot()}}
    )
    rota = POLICY.rota.model_copy(
        update={"people": people, "local_authorities": {"LA-EXAMPLE": la}}
    )
    policy = Policy(POLICY.risk, POLICY.escalation, rota, POLICY.templates)
    gaps = rota_gaps(alert(), policy)
    assert Gap("slot_empty", "duty_social_worker", "edt") in gaps
    assert Gap("no_address", "police_liaison", "pl-1", Channel.EMAIL) in gaps
    # The message that can be sent still goes: SMS to the liaison, both to the fallback.
    ids = {n.notification_id for n in fan_out(alert(), policy, Links("https://x", SECRET))}
    assert "K7Q2MD:high-t0:pl-1:sms" in ids and "K7Q2MD:high-t0:pl-1:email" not in ids
    assert {"K7Q2MD:high-t0:edt:sms", "K7Q2MD:high-t0:edt:email"} <= ids


def test_an_unknown_force_is_a_counted_gap_and_reaches_the_police_contact() -> None:
    """Finding 4 of issue #10: no force on record fell back to the emergency duty team and
    merged with the duty social worker; no gap was counted."""
    night = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    unprofiled = alert(police_force=None, initials=None, profile_missing=True, occurred_at=night)
    assert Gap("force_unknown", "police_liaison", "police-desk") in rota_gaps(unprofiled, POLICY)
    people = {n.recipient_id for n in fan_out(unprofiled, POLICY, Links("https://x", SECRET))}
    assert people == {"edt", "police-desk"}
