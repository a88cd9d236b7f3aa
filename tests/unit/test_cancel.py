"""Cancelling a false report (issue 14, streams/episodes/cancel.py): the episode stops at once,
everyone already told hears it was withdrawn, nothing counts it afterwards, and the export
leaves no period for it."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from alerts.templates import alert_context, render
from schemas.alerts import AlertKind, Channel
from schemas.common import Reporter, RiskFlag
from schemas.events import ReportCancelled
from streams.episodes.views import summarise
from streams.ssda903.export import fold_records, select_periods
from streams.web.episode_view import episode_view, find_episode
from tests.unit.episode_helpers import (
    CHILD,
    DOB_15,
    T0,
    Driver,
    absence,
    ack,
    actions,
    detail_of,
    hours,
    minutes,
    profile,
    returned,
    small_policy,
    update,
)

DUTY = Reporter(role="social_worker", organisation="LA-EXAMPLE duty team")


def cancel(at: object, code: str, reason: str = "not_missing") -> ReportCancelled:
    return ReportCancelled.model_validate(
        {
            "event_id": str(uuid4()),
            "occurred_at": at,
            "child_ref": CHILD,
            "episode_code": code,
            "reason": reason,
            "note": "was at her nan's all along",
            "reporter": DUTY.model_dump(),
            "api_key_id": "duty-team",
        }
    )


def high_risk_reported() -> Driver:
    driver = Driver()
    driver.send(profile(T0 - timedelta(days=1), flags=[RiskFlag.TRAFFICKING_SUSPECTED]), T0)
    driver.send(absence(T0), T0)
    return driver


def test_a_cancelled_report_stops_its_ladder_and_tells_everyone_told() -> None:
    driver = high_risk_reported()
    code = driver.code
    assert driver.step_ids() == ["high-t0"]
    told = driver.state.open_episode.notified_roles if driver.state else []
    effects = driver.send(cancel(T0 + minutes(10), code), T0 + minutes(10))
    assert actions(effects)[:1] == ["cancelled"]
    detail = detail_of(effects, "cancelled")
    assert detail["reason"] == "not_missing" and detail["was_open"] is True
    assert "nan" not in str(detail)  # the note is personal: never in a record
    (notice,) = effects.alerts
    assert notice.kind is AlertKind.CANCELLED and list(notice.roles) == told
    assert notice.cancel_reason == "not_missing"
    assert driver.state is not None and driver.state.open_episode is None
    for later in (minutes(31), hours(2), hours(3), hours(30)):  # t30m, t2h, re-notifies, RHI
        assert driver.tick(T0 + later).alerts == []
    assert driver.step_ids() == ["high-t0", "cancelled"]


def test_a_report_cancelled_before_anyone_was_told_is_silent() -> None:
    driver = Driver(policy=small_policy())
    driver.send(profile(T0 - timedelta(days=1)), T0)
    driver.send(absence(T0), T0)  # standard: the first step waits 5 minutes
    assert driver.step_ids() == []
    effects = driver.send(cancel(T0 + minutes(1), driver.code), T0 + minutes(1))
    assert effects.alerts == [] and actions(effects) == ["cancelled"]
    assert driver.tick(T0 + hours(5)).alerts == []


def test_events_naming_a_cancelled_episode_change_nothing() -> None:
    driver = high_risk_reported()
    code = driver.code
    driver.send(cancel(T0 + minutes(5), code), T0 + minutes(5))
    later = T0 + minutes(6)
    for event, reason in (
        (ack(later, code, "sw-1"), "episode_cancelled"),
        (update(later, "sighting", code=code), "episode_cancelled"),
        (returned(later, code=code), "episode_cancelled"),
        (cancel(later, code), "already_cancelled"),
        (cancel(later, "ZZZZZZ"), "unknown_episode"),
    ):
        effects = driver.send(event, later)
        assert actions(effects) == ["ignored"], event
        assert detail_of(effects, "ignored")["reason"] == reason
        assert effects.alerts == []


def test_a_new_absence_after_a_cancelled_one_is_a_first_episode() -> None:
    driver = high_risk_reported()
    first = driver.code
    driver.send(cancel(T0 + minutes(5), first), T0 + minutes(5))
    effects = driver.send(absence(T0 + hours(1)), T0 + hours(1))
    assert driver.code != first and "opened" in actions(effects)
    assert [a.step_id for a in effects.alerts] == ["high-t0"]


def test_a_cancelled_episode_does_not_count_towards_the_repeat_rule() -> None:
    """Three reports within 30 days call a strategy meeting; one of them false does not."""
    driver = Driver()
    driver.send(profile(T0 - timedelta(days=1)), T0)
    for day in (0, 1):
        start = T0 + timedelta(days=day)
        driver.send(absence(start), start)
        code = driver.code
        driver.send(returned(start + hours(1)), start + hours(1))
        if day == 0:
            driver.send(cancel(start + hours(2), code, "wrong_child"), start + hours(2))
    third = T0 + timedelta(days=2)
    driver.send(absence(third), third)
    assert not [a for a in driver.alerts if a.kind is AlertKind.STRATEGY_MEETING]
    assert driver.state is not None
    assert len(driver.state.recent_episodes) == 1 and len(driver.state.cancelled_episodes) == 1


def test_a_closed_episode_can_be_cancelled_and_its_interview_timers_stop() -> None:
    driver = high_risk_reported()
    code = driver.code
    driver.send(returned(T0 + hours(1)), T0 + hours(1))
    effects = driver.send(cancel(T0 + hours(2), code, "duplicate_report"), T0 + hours(2))
    assert detail_of(effects, "cancelled")["was_open"] is False
    assert [a.kind for a in effects.alerts] == [AlertKind.CANCELLED]
    assert driver.tick(T0 + hours(80)).alerts == []  # no RHI reminder or overdue notice
    assert driver.state is not None
    found = find_episode(driver.state, code)
    assert found is not None and episode_view(driver.state, found)["status"] == "cancelled"
    summary = summarise(driver.state, found, driver.policy, T0 + hours(2))
    assert (summary.status, summary.cancel_reason, summary.next_step) == (
        "cancelled",
        "duplicate_report",
        None,
    )


def test_the_export_leaves_no_period_for_a_cancelled_report() -> None:
    driver = Driver()
    driver.send(profile(T0 - timedelta(days=1)), T0)
    driver.send(absence(T0), T0)
    false = driver.code
    driver.send(cancel(T0 + minutes(30), false), T0 + minutes(30))
    driver.send(absence(T0 + hours(5)), T0 + hours(5))
    real = driver.code
    driver.send(returned(T0 + hours(9)), T0 + hours(9))
    periods = fold_records(r.model_dump(mode="json") for r in driver.records)
    out = select_periods(periods.values(), {CHILD: DOB_15}, T0.date(), T0.date() + timedelta(1))
    assert [p.code for p in out.periods] == [real]
    assert not [w for w in out.warnings if false in w]


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.EMAIL])
def test_the_cancelled_notice_says_why_and_names_no_one(channel: Channel) -> None:
    driver = high_risk_reported()
    effects = driver.send(cancel(T0 + minutes(5), driver.code), T0 + minutes(5))
    (notice,) = effects.alerts
    context = alert_context(notice, base_url="http://desk")
    _, body = render(driver.policy.templates, notice, channel, context)
    assert "the child was not missing" in body and notice.episode_code in body
    assert not any(secret in body for secret in ("Jane", "Secret", "asthma", "nan"))


def test_hostile_cancellations_are_refused_by_the_schema() -> None:
    base = cancel(T0, "ABCDEF").model_dump(mode="json")
    for bad in (
        {"reason": "changed my mind"},
        {"reason": None},
        {"episode_code": "a" * 500},
        {"note": "x" * 100_000},
        {"occurred_at": "0001-01-01T00:00:00Z", "reason": {"nested": {"deep": [1] * 100}}},
    ):
        with pytest.raises(ValueError):
            ReportCancelled.model_validate({**base, **bad})
