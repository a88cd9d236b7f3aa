"""The return home interview link (issue 13): signed like the acknowledgement link, never
interchangeable with it, carried by RHI reminders and overdue notices, and its form's answers
checked field by field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from alerts.ack_links import sign_link, sign_rhi_link, verify_link, verify_rhi_link
from alerts.fanout import Links, fan_out
from config import load_policy
from config.settings import POLICY_DIR
from schemas.alerts import Alert, AlertKind, Channel
from schemas.common import Category, Tier
from streams.web.rhi_form import Answers, FieldProblem, form_page, parse_answers

SECRET = b"test-link-secret"
NOW = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
POLICY = load_policy(POLICY_DIR)


def test_an_rhi_link_verifies_and_says_whose_and_for_which_episode() -> None:
    token = sign_rhi_link(SECRET, "K7Q2MD", "dsw-day", NOW + timedelta(days=14))
    claim = verify_rhi_link(SECRET, token, NOW)
    assert claim is not None and (claim.episode_code, claim.recipient_id) == ("K7Q2MD", "dsw-day")


def test_the_two_kinds_of_link_cannot_stand_in_for_each_other() -> None:
    ack = sign_link(SECRET, "K7Q2MD", "dsw-day", NOW + timedelta(days=1))
    rhi = sign_rhi_link(SECRET, "K7Q2MD", "dsw-day", NOW + timedelta(days=1))
    assert verify_rhi_link(SECRET, ack, NOW) is None
    assert verify_link(SECRET, rhi, NOW) is None
    assert verify_link(SECRET, ack, NOW) is not None


def test_expired_tampered_and_foreign_rhi_links_are_refused() -> None:
    token = sign_rhi_link(SECRET, "K7Q2MD", "dsw-day", NOW)
    assert verify_rhi_link(SECRET, token, NOW + timedelta(seconds=1)) is None
    assert verify_rhi_link(SECRET, token[:-2] + "AA", NOW) is None
    assert verify_rhi_link(b"another-secret", token, NOW) is None
    assert verify_rhi_link(SECRET, "not-a-token", NOW) is None


def alert(kind: AlertKind, template: str) -> Alert:
    return Alert(
        occurred_at=NOW,
        child_ref="C123",
        alert_id=f"K7Q2MD:{kind.value}",
        kind=kind,
        episode_code="K7Q2MD",
        step_id=kind.value,
        tier=Tier.HIGH,
        category=Category.MISSING,
        roles=("duty_social_worker",),
        channels=(Channel.SMS, Channel.EMAIL),
        template=template,
        local_authority="LA-EXAMPLE",
        initials="JD",
        last_seen_at=NOW - timedelta(days=3),
        reported_at=NOW - timedelta(days=3),
        returned_at=NOW - timedelta(days=2),
        rhi_due_at=NOW + timedelta(days=1),
    )


def links_in(a: Alert) -> list[str]:
    base = "https://ma.example.org"
    notes = fan_out(a, POLICY, Links(base, SECRET))
    return [w for n in notes for w in n.body.split() if w.startswith(base)]


def test_rhi_alerts_link_to_the_interview_form_and_others_to_acknowledge() -> None:
    for kind, template in (
        (AlertKind.RHI_REMINDER, "rhi_reminder"),
        (AlertKind.RHI_OVERDUE, "rhi_overdue"),
    ):
        found = links_in(alert(kind, template))
        assert found and all("/r/" in link for link in found), found
        token = found[0].rsplit("/", 1)[1]
        claim = verify_rhi_link(SECRET, token, NOW + timedelta(days=13))
        assert claim is not None and claim.episode_code == "K7Q2MD"  # lasts 14 days
    absence = alert(AlertKind.ABSENCE_REPORTED, "absence_reported")
    assert all("/a/" in link for link in links_in(absence))


TODAY = date(2026, 11, 25)


def test_the_form_answers_are_read_and_each_wrong_field_named() -> None:
    assert parse_answers({"offered_on": "2026-11-24", "accepted": "yes"}, TODAY) == Answers(
        date(2026, 11, 24), True
    )
    assert parse_answers({"offered_on": "2026-11-25"}, TODAY) == Answers(TODAY, None)
    assert parse_answers({"offered_on": "2026-11-25", "accepted": "no"}, TODAY) == Answers(
        TODAY, False
    )
    for form, field in [
        ({}, "offered_on"),
        ({"offered_on": "25/11/2026"}, "offered_on"),
        ({"offered_on": "2026-11-26"}, "offered_on"),  # the future
        ({"offered_on": "0001-01-01"}, "offered_on"),
        ({"offered_on": "2026-11-25", "accepted": "maybe"}, "accepted"),
    ]:
        got = parse_answers(form, TODAY)
        assert isinstance(got, FieldProblem) and got.field == field, (form, got)


def test_the_form_page_shows_the_problem_escaped() -> None:
    body = form_page("K7Q2MD", "tok", TODAY, FieldProblem("offered_on", "<b>bad</b>"))
    assert "&lt;b&gt;bad&lt;/b&gt;" in body and "<b>bad</b>" not in body
    assert "max=2026-11-25" in body and "method=post" in body
