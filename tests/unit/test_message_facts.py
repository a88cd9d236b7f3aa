"""Messages carry their facts (issue 13, part 3): the return home interview's due time, and
the repeat rule's own count and window, from the engine's decision to the rendered text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from alerts.fanout import Links, fan_out
from config import load_policy
from config.policy import Policy
from config.settings import POLICY_DIR
from schemas.alerts import Alert, AlertKind, Channel
from schemas.common import Category, Reporter
from schemas.events import AbsenceReported, ChildProfile, ReturnReported
from streams.episodes import machine

POLICY = load_policy(POLICY_DIR)
LINKS = Links("https://ma.example.org", b"test-link-secret")
CARER = Reporter(role="carer")
T0 = datetime(2026, 7, 10, 21, 0, tzinfo=UTC)  # 22:00 BST


def run(events: list[tuple[Any, datetime]], policy: Any = POLICY) -> list[Alert]:
    state, alerts = None, []
    for event, now in events:
        state, effects = machine.apply(state, event, now, policy)
        alerts += effects.alerts
    return alerts


def profile(child: str) -> ChildProfile:
    return ChildProfile(
        occurred_at=T0 - timedelta(days=60),
        child_ref=child,
        initials="JD",
        date_of_birth=date(2011, 2, 3),
        local_authority="LA-EXAMPLE",
    )


def away_and_back(child: str, seen: datetime) -> list[tuple[Any, datetime]]:
    gone = AbsenceReported(
        occurred_at=seen + timedelta(minutes=10),
        child_ref=child,
        last_seen_at=seen,
        category=Category.AWAY,
        reporter=CARER,
    )
    back = ReturnReported(
        occurred_at=seen + timedelta(hours=3),
        child_ref=child,
        returned_at=seen + timedelta(hours=2, minutes=30),
        reporter=CARER,
    )
    return [(gone, seen + timedelta(minutes=10)), (back, seen + timedelta(hours=3))]


def texts(alert: Alert, channel: Channel) -> list[str]:
    return [n.body for n in fan_out(alert, POLICY, LINKS) if n.channel is channel]


def test_the_return_notice_says_when_the_interview_is_due_in_london_time() -> None:
    alerts = run([(profile("C1"), T0), *away_and_back("C1", T0)])
    returned = next(a for a in alerts if a.kind is AlertKind.RETURNED)
    due_within = POLICY.escalation.return_home_interview.due_within
    assert returned.returned_at == T0 + timedelta(hours=2, minutes=30)
    assert returned.rhi_due_at == returned.returned_at + due_within
    # Back at 23:30 UTC on 10 July = 00:30 BST on 11 July; due 72 h later: 00:30 on 14 July
    # in London (the UTC date would say 13 July).
    assert due_within == timedelta(hours=72)
    (sms,) = texts(returned, Channel.SMS)
    assert "due by ." not in sms and "(not known)" not in sms
    assert "due by Tue 14 Jul 00:30." in sms, sms


def test_an_alert_without_the_facts_says_so_rather_than_printing_nothing() -> None:
    alerts = run([(profile("C2"), T0), *away_and_back("C2", T0)])
    returned = next(a for a in alerts if a.kind is AlertKind.RETURNED)
    old = returned.model_copy(update={"rhi_due_at": None, "returned_at": None})
    (sms,) = texts(old, Channel.SMS)
    assert "due by (not known)." in sms


def test_the_strategy_meeting_names_the_policys_own_count_and_window() -> None:
    rule = POLICY.escalation.repeat_episodes.model_copy(
        update={"count": 2, "window": timedelta(days=7)}
    )
    escalation = POLICY.escalation.model_copy(update={"repeat_episodes": rule})
    policy = Policy(POLICY.risk, escalation, POLICY.rota, POLICY.templates)
    events = [(profile("C3"), T0)]
    events += away_and_back("C3", T0)
    events += away_and_back("C3", T0 + timedelta(days=2))
    alerts = run(events, policy)
    meeting = next(a for a in alerts if a.kind is AlertKind.STRATEGY_MEETING)
    assert meeting.repeat is not None and meeting.repeat.episodes == 2
    bodies = [n.body for n in fan_out(meeting, policy, LINKS) if n.channel is Channel.EMAIL]
    assert bodies and all("2nd episode missing or away within 7 days" in b for b in bodies)
    assert not any("third missing episode within 30 days" in b for b in bodies)


def test_a_late_report_notice_gives_the_dates_away_and_back_in_london_time() -> None:
    """A return that arrived before its absence: one notice by email, with the dates."""
    gone, back = away_and_back("C4", T0)
    alerts = run([(profile("C4"), T0), (back[0], back[1]), (gone[0], back[1])])
    assert [a.kind for a in alerts] == [AlertKind.LATE_REPORT]
    notices = fan_out(alerts[0], POLICY, LINKS)
    assert {n.channel for n in notices} == {Channel.EMAIL}
    body = notices[0].body
    # Last seen 22:00 BST on 10 July, back 00:30 BST on 11 July.
    assert "from Fri 10 Jul 22:00 until Sat 11 Jul 00:30" in body, body
    assert "away" in body and "(not known)" not in body
    assert "Recorded late" in (notices[0].subject or "")
