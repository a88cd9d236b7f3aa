"""Example-based tests of the episode state machine, one rule at a time (SPEC section 3)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from config.policy import Ladder, Role
from schemas.alerts import AlertKind, Channel
from schemas.common import Category, RiskFlag, Tier
from streams.episodes.machine import apply, next_due, next_due_at
from streams.episodes.state import LATENESS_BOUND, NO_EPISODE, SEEN_EVENT_IDS_CAP, ChildState
from tests.unit.episode_helpers import (
    CHILD,
    T0,
    Driver,
    absence,
    ack,
    actions,
    check_in,
    detail_of,
    hours,
    minutes,
    policy_with,
    profile,
    returned,
    rhi,
    shipped_policy,
    small_policy,
    step_ids,
    timer,
    update,
)
from tests.unit.episode_helpers import (
    step as make_step,
)


def opened(
    *,
    flags: tuple[RiskFlag, ...] = (),
    with_profile: bool = True,
    reported: tuple[RiskFlag, ...] = (),
    danger: bool = False,
) -> Driver:
    """A child whose profile carries ``flags``, reported missing at T0, last seen at T0."""
    driver = Driver()
    if with_profile:
        driver.send(profile(T0 - hours(24), flags=flags), T0 - hours(24))
    driver.send(absence(T0, flags=reported, immediate_danger=danger), T0)
    return driver


# ------------------------------------------------------------------------------ opening


class TestOpening:
    def test_absence_opens_an_episode_and_fires_t0(self) -> None:
        driver = opened()
        state = driver.state
        assert state is not None and state.open_episode is not None
        episode = state.open_episode
        assert episode.tier is Tier.STANDARD
        assert driver.actions() == ["opened", "step_fired"]
        [alert] = driver.alerts
        assert alert.alert_id == f"{episode.code}:standard-t0"
        assert alert.step_id == "standard-t0"
        assert alert.kind is AlertKind.ABSENCE_REPORTED
        assert alert.roles == ("duty_social_worker",)
        assert alert.channels == (Channel.EMAIL, Channel.SMS)
        assert alert.initials == "JD" and alert.local_authority == "LA-EXAMPLE"
        assert alert.profile_missing is False
        assert alert.occurred_at == T0 and alert.last_seen_at == T0 and alert.reported_at == T0

    def test_no_profile_escalates_as_high_and_says_so(self) -> None:
        driver = opened(with_profile=False)
        [alert] = driver.alerts
        assert alert.tier is Tier.HIGH and alert.step_id == "high-t0"
        assert alert.profile_missing is True
        assert alert.roles == ("duty_social_worker", "police_liaison")
        assert "profile_missing" in driver.records[0].detail.as_dict()["reasons"]

    @pytest.mark.parametrize(
        ("reported", "danger", "tier"),
        [
            ((RiskFlag.TRAFFICKING_SUSPECTED,), False, Tier.HIGH),
            ((), True, Tier.HIGH),
            ((RiskFlag.OTHER_CONCERNS,), False, Tier.MEDIUM),
            ((), False, Tier.STANDARD),
        ],
    )
    def test_reported_facts_set_the_tier(
        self, reported: tuple[RiskFlag, ...], danger: bool, tier: Tier
    ) -> None:
        driver = opened(reported=reported, danger=danger)
        assert driver.state is not None and driver.state.open_episode is not None
        assert driver.state.open_episode.tier is tier
        assert driver.alerts[0].step_id == f"{tier.value}-t0"

    def test_profile_flags_and_age_set_the_tier(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        assert driver.alerts[0].tier is Tier.HIGH
        young = Driver()
        young.send(profile(T0, dob=T0.date().replace(year=T0.year - 12)), T0)
        young.send(absence(T0), T0)
        assert young.alerts[0].tier is Tier.HIGH

    def test_ladder_runs_from_last_seen_not_from_the_report(self) -> None:
        driver = Driver()
        driver.send(absence(T0, T0 + minutes(20), flags=[RiskFlag.CSE]), T0 + minutes(20))
        assert driver.state is not None
        # 30m after last seen, not after the report (which would be 10:50).
        assert next_due_at(driver.state, driver.policy) == T0 + minutes(30)
        assert driver.step_ids() == ["high-t0"]
        assert step_ids(driver.tick(T0 + minutes(29))) == []
        assert step_ids(driver.tick(T0 + minutes(30))) == ["high-t30m"]

    def test_late_report_fires_every_elapsed_step_at_once_in_order(self) -> None:
        driver = Driver()
        driver.send(profile(T0), T0)
        effects = driver.send(absence(T0, T0 + hours(5)), T0 + hours(5))
        assert step_ids(effects) == ["standard-t0", "standard-t4h"]
        # Nothing collapsed: each step still reaches its own roles.
        assert [a.roles for a in effects.alerts] == [
            ("duty_social_worker",),
            ("police_liaison", "team_manager"),
        ]
        assert [
            r.detail.as_dict()["due_at"] for r in effects.records if r.action == "step_fired"
        ] == [
            T0.isoformat(),
            (T0 + hours(4)).isoformat(),
        ]
        assert driver.state is not None and driver.state.open_episode is not None
        renotify = driver.state.open_episode.renotify
        assert renotify is not None and renotify.step_id == "standard-t4h"


# --------------------------------------------------------------------- ladder & timers


class TestLadder:
    def test_a_step_never_fires_before_its_delay(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        assert step_ids(driver.tick(T0 + minutes(30) - timedelta(seconds=1))) == [
            "high-t0+r1"
        ]  # the re-notify at 15m, nothing else
        assert step_ids(driver.tick(T0 + minutes(30))) == ["high-t30m"]

    def test_each_step_fires_once_and_a_stale_timer_is_a_no_op(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        driver.tick(T0 + minutes(30))
        again = driver.tick(T0 + minutes(30))
        assert again.alerts == [] and again.records == []
        assert driver.step_ids().count("high-t30m") == 1

    def test_a_timer_fires_everything_due_not_just_the_step_it_names(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        effects = driver.send(timer(T0 + hours(3), "ZZZZ"), T0 + hours(3))
        assert step_ids(effects) == ["high-t30m", "high-t2h"]

    def test_renotify_repeats_the_latest_unacknowledged_step(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        first = driver.tick(T0 + minutes(15))
        assert [(a.step_id, a.kind, a.roles) for a in first.alerts] == [
            ("high-t0+r1", AlertKind.RENOTIFY, ("duty_social_worker", "police_liaison"))
        ]
        assert first.alerts[0].alert_id == f"{driver.code}:high-t0+r1"
        # At 30m the next step fires instead; re-notify switches to its roles from then on.
        assert step_ids(driver.tick(T0 + minutes(30))) == ["high-t30m"]
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) == T0 + minutes(45)
        later = driver.tick(T0 + minutes(45))
        assert [(a.step_id, a.roles) for a in later.alerts] == [
            ("high-t30m+r1", ("team_manager", "out_of_hours_team"))
        ]

    def test_a_late_timer_sends_one_renotify_not_a_burst(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        driver.tick(T0 + minutes(30))
        effects = driver.tick(T0 + minutes(100))
        assert step_ids(effects) == ["high-t30m+r1"]  # high-t2h is not due until 120m
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) == T0 + minutes(115)

    def test_no_renotify_before_the_first_unacknowledged_step(self) -> None:
        driver = Driver(policy=small_policy())
        driver.send(profile(T0), T0)
        driver.send(absence(T0, flags=[RiskFlag.OTHER_CONCERNS]), T0)
        assert driver.step_ids() == ["m0"]
        slow = Driver(policy=small_policy())
        slow.send(profile(T0), T0)
        slow.send(absence(T0), T0)
        assert slow.alerts == []  # standard ladder starts at 5m
        assert slow.state is not None
        assert next_due_at(slow.state, slow.policy) == T0 + minutes(5)

    def test_a_ladder_without_renotify_never_repeats(self) -> None:
        driver = Driver(policy=small_policy())
        driver.send(profile(T0), T0)
        driver.send(absence(T0), T0)
        driver.tick(T0 + minutes(5))
        assert step_ids(driver.tick(T0 + minutes(39))) == []
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) == T0 + minutes(40)


# --------------------------------------------------------------------- acknowledgement


class TestAcknowledgement:
    def test_ack_silences_unacknowledged_steps_and_renotify_but_not_milestones(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        effects = driver.send(ack(T0 + minutes(5), driver.code), T0 + minutes(5))
        assert actions(effects) == ["acknowledged"]
        detail = detail_of(effects, "acknowledged")
        assert detail["first"] is True and detail["silenced_steps"] == ["high-t30m"]
        assert detail["recipient_id"] == "sw-1"
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) == T0 + hours(2)
        assert step_ids(driver.tick(T0 + hours(2))) == ["high-t2h"]
        assert driver.step_ids() == ["high-t0", "high-t2h"]

    def test_a_second_acknowledger_is_recorded_too(self) -> None:
        driver = opened()
        driver.send(ack(T0, driver.code, "sw-1"), T0)
        effects = driver.send(ack(T0 + minutes(1), driver.code, "tm-1"), T0 + minutes(1))
        assert detail_of(effects, "acknowledged")["first"] is False
        assert driver.state is not None and driver.state.open_episode is not None
        assert set(driver.state.open_episode.acknowledged_by) == {"sw-1", "tm-1"}

    def test_ack_for_an_unknown_or_closed_episode_is_recorded_as_ignored(self) -> None:
        driver = opened()
        unknown = driver.send(ack(T0, "ZZZZZZ"), T0)
        assert actions(unknown) == ["ignored"]
        assert detail_of(unknown, "ignored")["reason"] == "unknown_episode"
        code = driver.code
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        closed = driver.send(ack(T0 + hours(2), code), T0 + hours(2))
        assert detail_of(closed, "ignored")["reason"] == "episode_closed"
        assert closed.alerts == []


# ---------------------------------------------------------------------- updates & risk


class TestUpdates:
    def test_second_absence_is_an_update_not_a_new_episode(self) -> None:
        driver = opened()
        code = driver.code
        effects = driver.send(
            absence(T0, T0 + minutes(10), category=Category.AWAY), T0 + minutes(10)
        )
        assert driver.code == code
        assert actions(effects) == ["updated", "category_changed"]
        assert detail_of(effects, "category_changed") == {
            "event_type": "absence",
            "from": "missing",
            "to": "away",
            "category_code": "A",
        }

    def test_an_earlier_last_seen_moves_the_clock_a_later_one_does_not(self) -> None:
        driver = opened()
        effects = driver.send(absence(T0 - hours(5), T0 + minutes(1)), T0 + minutes(1))
        assert detail_of(effects, "updated")["last_seen_moved_earlier"] is True
        assert step_ids(effects) == ["standard-t4h"]  # now 5h01 after last seen
        later = driver.send(absence(T0, T0 + minutes(2)), T0 + minutes(2))
        assert detail_of(later, "updated")["last_seen_moved_earlier"] is False
        assert driver.state is not None and driver.state.open_episode is not None
        assert driver.state.open_episode.last_seen_at == T0 - hours(5)

    def test_category_change_is_recorded_and_carried_by_later_alerts(self) -> None:
        driver = opened()
        effects = driver.send(
            update(T0 + minutes(1), "category", category=Category.AWAY), T0 + minutes(1)
        )
        assert actions(effects) == ["updated", "category_changed"]
        later = driver.tick(T0 + hours(4))
        assert [a.category for a in later.alerts] == [Category.AWAY]
        closing = driver.send(returned(T0 + hours(5)), T0 + hours(5))
        assert detail_of(closing, "closed")["category_code"] == "A"

    def test_sighting_update_is_recorded_and_changes_no_clock(self) -> None:
        driver = opened()
        effects = driver.send(update(T0 + minutes(3), "sighting"), T0 + minutes(3))
        assert actions(effects) == ["sighting"]
        assert driver.has_open

    def test_update_naming_another_episode_is_ignored(self) -> None:
        driver = opened()
        effects = driver.send(update(T0, "information", code="ZZZZZZ"), T0)
        assert detail_of(effects, "ignored")["reason"] == "unknown_episode"
        none = Driver()
        effects = none.send(update(T0, "information"), T0)
        assert [(r.action, r.episode_code) for r in effects.records] == [("ignored", NO_EPISODE)]


class TestTierChanges:
    def test_raised_tier_moves_onto_the_higher_ladder_at_once(self) -> None:
        driver = opened()
        effects = driver.send(
            update(T0 + minutes(40), "risk", flags=[RiskFlag.COUNTY_LINES]), T0 + minutes(40)
        )
        assert actions(effects)[:2] == ["updated", "tier_changed"]
        assert detail_of(effects, "tier_changed")["to"] == "high"
        # high-t0 and high-t30m have elapsed; their roles hear it from those steps, and the only
        # role told before (the duty social worker) is among them: no separate tier_raised.
        assert step_ids(effects) == ["high-t0", "high-t30m"]
        assert all(a.tier is Tier.HIGH for a in effects.alerts)
        assert "high-t2h" in step_ids(driver.tick(T0 + hours(2)))

    def test_raise_tells_roles_no_new_step_reaches(self) -> None:
        driver = Driver(policy=small_policy())
        driver.send(profile(T0), T0)
        driver.send(absence(T0), T0)
        driver.tick(T0 + minutes(5))
        driver.tick(T0 + minutes(40))  # s40: police liaison and team manager
        effects = driver.send(
            update(T0 + minutes(41), "risk", flags=[RiskFlag.OTHER_CONCERNS]), T0 + minutes(41)
        )
        # m0 and m20 reach the duty social worker and police; only the manager needs the notice.
        assert [(a.step_id, a.roles) for a in effects.alerts] == [
            ("tier-raised-medium", ("team_manager",)),
            ("m0", ("duty_social_worker",)),
            ("m20", ("police_liaison",)),
        ]
        assert effects.alerts[0].kind is AlertKind.TIER_RAISED
        assert effects.alerts[0].tier is Tier.MEDIUM

    def test_raise_after_ack_still_reaches_the_new_ladders_roles(self) -> None:
        driver = opened()
        driver.send(ack(T0 + minutes(1), driver.code), T0 + minutes(1))
        effects = driver.send(
            update(T0 + minutes(2), "risk", flags=[RiskFlag.CSE]), T0 + minutes(2)
        )
        # high-t0 is silenced by the acknowledgement, so the raise notice carries the news to
        # everyone told so far and to the roles high-t0 would have told.
        assert [(a.step_id, a.kind, a.roles) for a in effects.alerts] == [
            (
                "tier-raised-high",
                AlertKind.TIER_RAISED,
                ("duty_social_worker", "police_liaison"),
            )
        ]
        assert effects.alerts[0].template == "tier_raised"
        assert step_ids(driver.tick(T0 + hours(2))) == ["high-t2h"]

    def test_a_lowered_assessment_never_lowers_the_tier(self) -> None:
        driver = opened(with_profile=False)  # high: no profile
        assert driver.state is not None
        effects = driver.send(profile(T0 + minutes(5)), T0 + minutes(5))
        detail = detail_of(effects, "updated")
        assert detail["assessed_tier"] == "standard" and detail["profile_received"] is True
        assert "tier_changed" not in actions(effects)
        assert driver.state.open_episode is not None
        assert driver.state.open_episode.tier is Tier.HIGH
        later = driver.tick(T0 + minutes(30))
        assert [(a.step_id, a.tier, a.profile_missing) for a in later.alerts] == [
            ("high-t30m", Tier.HIGH, False)
        ]

    def test_steps_already_fired_are_never_resent_on_a_raise(self) -> None:
        # Every tier shares the step id "t0": a raise must not send it a second time.
        ladder = Ladder(steps=(make_step("t0", minutes(0), [Role.DUTY_SOCIAL_WORKER]),))
        driver = Driver(policy=policy_with(dict.fromkeys(Tier, ladder)))
        driver.send(profile(T0), T0)
        driver.send(absence(T0), T0)
        effects = driver.send(update(T0, "risk", flags=[RiskFlag.CSE]), T0)
        # The duty social worker hears of the raise by the notice, not by t0 a second time.
        assert step_ids(effects) == ["tier-raised-high"]
        assert driver.step_ids() == ["t0", "tier-raised-high"]

    def test_previous_episode_within_30_days_makes_it_medium(self) -> None:
        driver = opened()
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        driver.send(absence(T0 + hours(30)), T0 + hours(30))
        assert driver.alerts[-1].step_id == "medium-t0"


# ------------------------------------------------------------------------ check-ins


class TestCheckIns:
    def test_check_in_without_episode_keeps_last_seen_current(self) -> None:
        driver = Driver()
        effects = driver.send(check_in(T0), T0)
        assert effects.alerts == [] and effects.records == []
        driver.send(check_in(T0 - hours(1)), T0)
        assert driver.state is not None and driver.state.last_seen_at == T0

    def test_check_in_during_an_episode_is_a_sighting_and_does_not_close_it(self) -> None:
        driver = opened()
        effects = driver.send(check_in(T0 + minutes(10)), T0 + minutes(10))
        assert actions(effects) == ["sighting"]
        assert detail_of(effects, "sighting")["present_at_placement"] is True
        assert driver.has_open
        assert driver.state is not None and driver.state.last_seen_at is None


# --------------------------------------------------------------------------- returns


class TestReturn:
    def test_return_closes_and_tells_everyone_notified_even_if_acknowledged(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        driver.tick(T0 + minutes(30))
        driver.send(ack(T0 + minutes(31), driver.code), T0 + minutes(31))
        code = driver.code
        effects = driver.send(returned(T0 + hours(1), how="found"), T0 + hours(1))
        assert actions(effects) == ["closed", "step_fired"]
        [notice] = effects.alerts
        assert notice.alert_id == f"{code}:returned" and notice.kind is AlertKind.RETURNED
        assert notice.roles == (
            "duty_social_worker",
            "police_liaison",
            "team_manager",
            "out_of_hours_team",
        )
        assert notice.channels == (Channel.SMS, Channel.EMAIL)
        assert detail_of(effects, "closed")["how"] == "found"
        state = driver.state
        assert state is not None and state.open_episode is None
        assert state.recent_episodes[-1].returned_at == T0 + hours(1)
        assert state.last_seen_at == T0 + hours(1)

    def test_return_stops_the_ladder(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        driver.send(returned(T0 + minutes(10)), T0 + minutes(10))
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) == T0 + minutes(10) + hours(48)
        assert step_ids(driver.tick(T0 + hours(3))) == []

    def test_rhi_reminder_and_overdue_fire_on_time(self) -> None:
        driver = opened()
        code = driver.code
        back = T0 + hours(1)
        driver.send(returned(back), back)
        assert step_ids(driver.tick(back + hours(48) - timedelta(seconds=1))) == []
        reminder = driver.tick(back + hours(48))
        assert [(a.step_id, a.kind, a.roles) for a in reminder.alerts] == [
            ("rhi-reminder", AlertKind.RHI_REMINDER, ("duty_social_worker",))
        ]
        assert reminder.alerts[0].alert_id == f"{code}:rhi-reminder"
        overdue = driver.tick(back + hours(72))
        assert [(a.step_id, a.roles) for a in overdue.alerts] == [
            ("rhi-overdue", ("team_manager",))
        ]
        assert driver.state is not None
        assert next_due_at(driver.state, driver.policy) is None

    def test_rhi_recorded_before_the_timers_skips_them(self) -> None:
        driver = opened()
        code = driver.code
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        effects = driver.send(rhi(T0 + hours(20), code, accepted=True), T0 + hours(20))
        assert actions(effects) == ["return_interview_recorded"]
        assert detail_of(effects, "return_interview_recorded")["accepted"] is True
        assert step_ids(driver.tick(T0 + hours(100))) == []
        assert driver.state is not None and next_due_at(driver.state, driver.policy) is None

    def test_rhi_for_open_or_unknown_episode_is_ignored(self) -> None:
        driver = opened()
        effects = driver.send(rhi(T0, driver.code), T0)
        assert detail_of(effects, "ignored")["reason"] == "episode_open"
        effects = driver.send(rhi(T0, "ZZZZZZ"), T0)
        assert detail_of(effects, "ignored")["reason"] == "unknown_episode"

    def test_return_naming_the_episode_before_last_seen_is_clamped_and_recorded(self) -> None:
        driver = opened()
        effects = driver.send(
            returned(T0 - hours(2), T0 + hours(1), code=driver.code), T0 + hours(1)
        )
        detail = detail_of(effects, "closed")
        assert detail["returned_at"] == T0.isoformat()
        assert detail["returned_at_adjusted"] is True

    def test_return_in_the_future_is_clamped_to_now(self) -> None:
        driver = opened()
        effects = driver.send(returned(T0 + hours(3), T0 + hours(3)), T0 + hours(1))
        assert detail_of(effects, "closed")["returned_at"] == (T0 + hours(1)).isoformat()

    def test_return_without_any_episode_is_held_then_expires_with_a_record(self) -> None:
        driver = Driver()
        effects = driver.send(returned(T0), T0)
        assert [(r.action, r.episode_code) for r in effects.records] == [
            ("return_held", NO_EPISODE)
        ]
        assert effects.alerts == []
        later = driver.tick(T0 + LATENESS_BOUND)
        assert [(r.action, r.detail.as_dict()["reason"]) for r in later.records] == [
            ("ignored", "return_without_absence")
        ]
        assert driver.state is not None and driver.state.held_returns == []

    def test_return_before_anyone_was_told_sends_no_notice(self) -> None:
        driver = Driver(policy=small_policy())
        driver.send(profile(T0), T0)
        driver.send(absence(T0), T0)  # standard: first step at 5m
        effects = driver.send(returned(T0 + minutes(2)), T0 + minutes(2))
        assert effects.alerts == [] and actions(effects) == ["closed"]

    def test_late_return_fires_due_rhi_timers_at_once(self) -> None:
        driver = opened()
        effects = driver.send(returned(T0 + hours(1), T0 + hours(80)), T0 + hours(80))
        assert step_ids(effects) == ["returned", "rhi-reminder", "rhi-overdue"]


# ----------------------------------------------------------------------------- repeats


class TestRepeatEpisodes:
    def _episode(self, driver: Driver, start: timedelta) -> list[str]:
        effects = driver.send(absence(T0 + start), T0 + start)
        code = driver.code
        driver.send(returned(T0 + start + hours(1)), T0 + start + hours(1))
        driver.send(rhi(T0 + start + hours(2), code), T0 + start + hours(2))
        return step_ids(effects)

    def test_third_episode_within_the_window_calls_a_strategy_meeting(self) -> None:
        driver = Driver()
        driver.send(profile(T0), T0)
        assert "repeat-strategy-meeting" not in self._episode(driver, timedelta(0))
        assert "repeat-strategy-meeting" not in self._episode(driver, timedelta(days=10))
        third = self._episode(driver, timedelta(days=20))
        assert third == ["medium-t0", "repeat-strategy-meeting"]
        meeting = driver.alerts[-2]
        assert meeting.kind is AlertKind.STRATEGY_MEETING
        assert meeting.roles == ("team_manager",) and meeting.template == "strategy_meeting"

    def test_episodes_outside_the_window_do_not_count(self) -> None:
        driver = Driver()
        driver.send(profile(T0), T0)
        self._episode(driver, timedelta(0))
        self._episode(driver, timedelta(days=20))
        assert "repeat-strategy-meeting" not in self._episode(driver, timedelta(days=31))


# ----------------------------------------------------------------- ordering & robustness


class TestRobustness:
    def test_duplicate_event_has_no_effect_but_a_record(self) -> None:
        driver = Driver()
        driver.send(profile(T0), T0)
        report = absence(T0)
        driver.send(report, T0)
        before = driver.state
        effects = driver.send(report, T0 + minutes(1))
        assert effects.alerts == []
        assert [r.detail.as_dict()["reason"] for r in effects.records] == ["duplicate_event"]
        assert driver.state == before

    def test_duplicate_profile_without_episode_is_silent(self) -> None:
        driver = Driver()
        event = profile(T0)
        driver.send(event, T0)
        effects = driver.send(event, T0)
        assert effects.records == [] and effects.alerts == []

    def test_apply_is_deterministic_and_does_not_mutate_its_inputs(self) -> None:
        policy = shipped_policy()
        state, _ = apply(None, profile(T0), T0, policy)
        snapshot = state.model_dump(mode="json")
        event = absence(T0, T0 + hours(5), flags=[RiskFlag.CSE])
        first = apply(state, event, T0 + hours(5), policy)
        second = apply(state, event, T0 + hours(5), policy)
        assert first == second
        assert state.model_dump(mode="json") == snapshot
        ids = [a.event_id for a in first[1].alerts] + [r.event_id for r in first[1].records]
        assert len(set(ids)) == len(ids)

    def test_stale_profile_is_ignored(self) -> None:
        driver = opened()
        effects = driver.send(profile(T0 - hours(48), flags=[RiskFlag.CSE]), T0)
        assert detail_of(effects, "ignored")["reason"] == "stale_profile"
        assert driver.state is not None and driver.state.profile is not None
        assert driver.state.profile.risk_flags == frozenset()

    def test_profile_without_episode_just_updates_state(self) -> None:
        driver = Driver()
        effects = driver.send(profile(T0, flags=[RiskFlag.UASC]), T0)
        assert effects.records == [] and effects.alerts == []
        assert driver.state is not None and driver.state.profile is not None

    def test_absence_reported_before_the_last_return_amends_that_episode(self) -> None:
        driver = opened()
        code = driver.code
        driver.send(returned(T0 + hours(2)), T0 + hours(2))
        stale = absence(T0 + minutes(30), T0 + hours(1), category=Category.AWAY)
        effects = driver.send(stale, T0 + hours(3))
        assert [
            (r.action, r.episode_code, r.detail.as_dict()["reason"]) for r in effects.records
        ] == [("amended", code, "late_information")]
        assert effects.alerts == [] and not driver.has_open
        assert (
            effects.records[0].detail.as_dict()["category_code"] == "A"
        )  # stated later than the first

    def test_new_absence_last_seen_before_previous_return_is_clamped(self) -> None:
        driver = opened()
        driver.send(returned(T0 + hours(2)), T0 + hours(2))
        effects = driver.send(absence(T0 + hours(1), T0 + hours(3)), T0 + hours(3))
        detail = detail_of(effects, "opened")
        assert detail["last_seen_adjusted"] is True
        assert detail["last_seen_at"] == (T0 + hours(2)).isoformat()

    def test_event_for_another_child_is_ignored(self) -> None:
        driver = opened()
        before = driver.state
        effects = driver.send(absence(T0, child="OTHER"), T0)
        assert [r.detail.as_dict()["reason"] for r in effects.records] == ["wrong_child"]
        assert driver.state == before

    def test_records_carry_no_personal_detail(self) -> None:
        driver = opened()
        driver.send(update(T0 + minutes(1), "information"), T0 + minutes(1))
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        text = " ".join(str(r.detail.as_dict()) for r in driver.records)
        for secret in ("Jane", "Secret", "asthma", "red coat", "station"):
            assert secret not in text

    def test_seen_event_ids_are_capped(self) -> None:
        driver = Driver()
        for i in range(SEEN_EVENT_IDS_CAP + 10):
            driver.send(check_in(T0 + timedelta(seconds=i)), T0 + timedelta(seconds=i))
        assert driver.state is not None
        assert len(driver.state.seen_event_ids) == SEEN_EVENT_IDS_CAP

    def test_old_closed_episodes_are_pruned(self) -> None:
        driver = opened()
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        driver.send(rhi(T0 + hours(2), driver.state.recent_episodes[0].code), T0 + hours(2))  # type: ignore[union-attr]
        driver.send(check_in(T0 + timedelta(days=20)), T0 + timedelta(days=20))
        assert driver.state is not None and len(driver.state.recent_episodes) == 1
        driver.send(check_in(T0 + timedelta(days=60)), T0 + timedelta(days=60))
        assert driver.state.recent_episodes == []

    def test_state_round_trips_through_json(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        driver.send(ack(T0 + minutes(1), driver.code), T0 + minutes(1))
        driver.send(returned(T0 + hours(1)), T0 + hours(1))
        state = driver.state
        assert state is not None
        assert ChildState.model_validate(state.model_dump(mode="json")) == state

    def test_next_due_names_the_episode(self) -> None:
        driver = opened(flags=(RiskFlag.CSE,))
        assert driver.state is not None
        due = next_due(driver.state, driver.policy)
        assert due is not None and due.episode_code == driver.code
        assert next_due_at(ChildState(child_ref=CHILD), driver.policy) is None

    def test_event_ids_derive_from_the_input_event(self) -> None:
        policy = shipped_policy()
        event = absence(T0, event_id=UUID(int=7))
        _, one = apply(None, event, T0, policy)
        _, two = apply(None, event, T0, policy)
        assert [a.event_id for a in one.alerts] == [a.event_id for a in two.alerts]
        assert [r.event_id for r in one.records] == [r.event_id for r in two.records]
