"""Property-based tests: random event sequences through apply must keep the engine's invariants.

Operations are generated as intents ("acknowledge the open episode", "return, 20 minutes ago") and
turned into events against the current state, so they hit real episode codes as well as unknown
and closed ones. ``now`` never goes backwards, as in the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import Policy
from config.policy import Step
from schemas.alerts import Alert, AlertKind
from schemas.common import Category, RiskFlag
from schemas.events import InputEvent
from streams.episodes.machine import apply, next_due_at
from streams.episodes.state import (
    RECENT_EPISODES_CAP,
    SEEN_EVENT_IDS_CAP,
    ChildState,
    Effects,
    Episode,
    seen_key,
)
from tests.unit.episode_helpers import (
    T0,
    absence,
    ack,
    check_in,
    minutes,
    profile,
    returned,
    rhi,
    shipped_policy,
    small_policy,
    timer,
    update,
)

POLICIES = {"shipped": shipped_policy(), "small": small_policy()}
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
AFTER_CLOSE = {AlertKind.RETURNED, AlertKind.RHI_REMINDER, AlertKind.RHI_OVERDUE}
FLAGS = st.frozensets(
    st.sampled_from(
        [RiskFlag.CSE, RiskFlag.OTHER_CONCERNS, RiskFlag.UASC, RiskFlag.IMMEDIATE_DANGER]
    ),
    max_size=2,
)
TARGETS = st.sampled_from(["open", "none", "closed", "unknown"])
# Minutes back from now: ladder boundaries of both policies are likelier than a uniform draw.
MINUTES_BACK = st.one_of(
    st.sampled_from([0, 1, 4, 5, 9, 10, 29, 30, 59, 60, 119, 120, 239, 240, 1439, 1440]),
    st.integers(0, 1500),
)


def ladder_steps(policy: Policy) -> dict[str, Step]:
    """Step id -> step over every tier (ids are unique across tiers in both test policies)."""
    return {s.id: s for ladder in policy.escalation.tiers.values() for s in ladder.steps}


# ----------------------------------------------------------------------------- intents

ops = st.one_of(
    st.tuples(st.just("profile"), FLAGS, st.sampled_from([9, 15, 17])),
    st.tuples(
        st.just("absence"),
        MINUTES_BACK,
        st.sampled_from(list(Category)),
        FLAGS,
        st.booleans(),
    ),
    st.tuples(
        st.just("update"),
        st.sampled_from(["sighting", "information", "category", "risk"]),
        TARGETS,
        st.sampled_from(list(Category)),
        FLAGS,
        st.booleans(),
    ),
    st.tuples(st.just("ack"), TARGETS, st.sampled_from(["sw-1", "tm-1"])),
    st.tuples(st.just("check_in"), st.integers(0, 120)),
    st.tuples(st.just("return"), st.one_of(MINUTES_BACK, st.integers(-30, 0)), TARGETS),
    st.tuples(st.just("rhi"), TARGETS),
    st.tuples(st.just("timer")),
    # The timer waking at (or a second either side of) the next due time: probes every boundary.
    st.tuples(st.just("tick"), st.sampled_from([-1, 0, 0, 1])),
    st.tuples(st.just("duplicate"), st.integers(0, 1000)),
)
# Whole minutes, sometimes a second either side, so "due" and "a second before due" both occur.
advances = st.builds(
    lambda m, s: timedelta(minutes=m, seconds=s),
    st.sampled_from([0, 0, 1, 5, 10, 15, 29, 30, 45, 60, 120, 240, 1440, 2880, 4320]),
    st.sampled_from([0, 0, 0, -1, 1]),
).map(lambda d: max(d, timedelta(0)))
scripts = st.lists(st.tuples(advances, ops), min_size=6, max_size=40)


@dataclass
class World:
    """The running stream for one example: state, clock, events so far, and what we learnt."""

    policy: Policy
    state: ChildState | None = None
    now: datetime = T0
    events: list[InputEvent] = field(default_factory=list)
    episodes: dict[str, Episode] = field(default_factory=dict)
    alerts: list[tuple[datetime, Alert]] = field(default_factory=list)
    counter: int = 0

    def next_id(self) -> UUID:
        self.counter += 1
        return UUID(int=self.counter)

    def code(self, target: str) -> str | None:
        state = self.state
        if target == "open" and state and state.open_episode:
            return state.open_episode.code
        if target == "closed" and state and state.recent_episodes:
            return state.recent_episodes[-1].code
        if target == "unknown":
            return "ZZZZZZ"
        return None


def build_event(world: World, op: tuple[Any, ...]) -> InputEvent:
    now, kind = world.now, op[0]
    event: InputEvent
    if kind == "profile":
        dob = (now - timedelta(days=365 * op[2] + 100)).date()
        event = profile(now, flags=op[1], dob=dob)
    elif kind == "absence":
        event = absence(
            now - minutes(op[1]), now, category=op[2], flags=op[3], immediate_danger=op[4]
        )
    elif kind == "update":
        _, what, target, category, flags, danger = op
        if what == "risk" and not flags:
            danger = True
        event = update(
            now,
            what,
            code=world.code(target),
            category=category if what == "category" else None,
            flags=flags,
            immediate_danger=danger,
        )
    elif kind == "ack":
        event = ack(now, world.code(op[1]) or "ZZZZZZ", op[2])
    elif kind == "check_in":
        event = check_in(now - minutes(op[1]))
    elif kind == "return":
        event = returned(now - minutes(op[1]), now, code=world.code(op[2]))
    elif kind == "rhi":
        event = rhi(now, world.code(op[1]) or "ZZZZZZ")
    elif kind in ("timer", "tick"):
        event = timer(now, world.code("open") or "ZZZZZZ")
    elif world.events:
        return world.events[int(op[1]) % len(world.events)]
    else:
        event = check_in(now)
    fresh: InputEvent = event.model_copy(update={"event_id": world.next_id()})
    return fresh


# -------------------------------------------------------------------------- invariants


def step_once(world: World, event: InputEvent) -> tuple[ChildState, Effects]:
    """Apply one event and check everything that must hold of a single step."""
    before = world.state.model_dump(mode="json") if world.state else None
    state, effects = apply(world.state, event, world.now, world.policy)
    assert (state, effects) == apply(world.state, event, world.now, world.policy)
    if world.state is not None:
        assert world.state.model_dump(mode="json") == before, "apply mutated its input"
    assert ChildState.model_validate(state.model_dump(mode="json")) == state
    assert len(state.seen_event_ids) <= SEEN_EVENT_IDS_CAP
    assert len(state.recent_episodes) <= RECENT_EPISODES_CAP
    return state, effects


def check_alerts(world: World, previous: ChildState | None, state: ChildState, fx: Effects) -> None:
    steps = ladder_steps(world.policy)
    fired_before = {(a.episode_code, a.step_id) for _, a in world.alerts}
    for alert in fx.alerts:
        assert (alert.episode_code, alert.step_id) not in fired_before, "step fired twice"
        fired_before.add((alert.episode_code, alert.step_id))
        assert alert.occurred_at == world.now
        episode = current_episode(state, alert.episode_code) or world.episodes[alert.episode_code]
        was_open = open_code(previous) == alert.episode_code
        if alert.step_id in steps:
            assert world.now >= episode.last_seen_at + steps[alert.step_id].after, "early step"
        if episode.acknowledged:
            assert alert.kind is not AlertKind.RENOTIFY, "re-notify after acknowledgement"
            step = steps.get(alert.step_id)
            assert step is None or not step.until_acknowledged, "until-ack step after ack"
        if episode.closed_at is not None and not was_open:
            # Closed before this event: only the RHI timers may still speak.
            assert alert.kind in {AlertKind.RHI_REMINDER, AlertKind.RHI_OVERDUE}
        elif episode.closed_at is not None:
            assert alert.kind in AFTER_CLOSE


def check_episode(world: World, state: ChildState) -> None:
    """Nothing due is left unfired, and the firing tier never goes down."""
    episode = state.open_episode
    if episode is None:
        return
    earlier = world.episodes.get(episode.code)
    if earlier is not None:
        assert episode.tier.rank >= earlier.tier.rank, "tier decreased"
        assert episode.last_seen_at <= earlier.last_seen_at, "last seen moved later"
    for step in world.policy.escalation.tiers[episode.tier].steps:
        due = episode.last_seen_at + step.after <= world.now
        silenced = step.until_acknowledged and episode.acknowledged
        if due and not silenced:
            assert step.id in episode.fired, f"{step.id} due but not fired"


def wake_up(world: World, offset_seconds: int) -> datetime:
    due = next_due_at(world.state, world.policy) if world.state else None
    return due + timedelta(seconds=offset_seconds) if due is not None else world.now


def is_duplicate(state: ChildState | None, event: InputEvent) -> bool:
    return state is not None and seen_key(event.event_id) in state.seen_event_ids


def open_code(state: ChildState | None) -> str | None:
    return state.open_episode.code if state and state.open_episode else None


def current_episode(state: ChildState, code: str) -> Episode | None:
    if state.open_episode is not None and state.open_episode.code == code:
        return state.open_episode
    return state.closed_episode(code)


def learn(world: World, state: ChildState, fx: Effects) -> None:
    for episode in [*state.recent_episodes, state.open_episode]:
        if episode is not None:
            world.episodes[episode.code] = episode
    world.alerts.extend((world.now, a) for a in fx.alerts)
    world.state = state


def tiers_never_drop(world: World) -> None:
    by_episode: dict[str, int] = {}
    for _, alert in world.alerts:
        rank = alert.tier.rank
        assert rank >= by_episode.get(alert.episode_code, rank), "alert tier decreased"
        by_episode[alert.episode_code] = rank


# ---------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(policy_name=st.sampled_from(sorted(POLICIES)), script=scripts)
def test_random_streams_keep_the_invariants(
    policy_name: str, script: list[tuple[timedelta, tuple[Any, ...]]]
) -> None:
    world = World(policy=POLICIES[policy_name])
    for advance, op in script:
        # A tick replaces the random advance: it wakes exactly where the timer would.
        world.now = (
            max(world.now, wake_up(world, op[1])) if op[0] == "tick" else world.now + advance
        )
        event = build_event(world, op)
        previous = world.state
        state, effects = step_once(world, event)
        check_alerts(world, previous, state, effects)
        if not is_duplicate(previous, event):  # a duplicate changes nothing, by design
            check_episode(world, state)
        learn(world, state, effects)
        world.events.append(event)
    tiers_never_drop(world)


@PROPERTY_SETTINGS
@given(
    policy_name=st.sampled_from(sorted(POLICIES)),
    flags=FLAGS,
    with_profile=st.booleans(),
    ack_after=st.none() | st.integers(0, 300),
    return_after=st.none() | st.integers(0, 3000),
    rhi_after=st.none() | st.integers(0, 4000),
)
def test_a_timer_driven_by_next_due_at_fires_everything_on_time(
    policy_name: str,
    flags: frozenset[RiskFlag],
    with_profile: bool,
    ack_after: int | None,
    return_after: int | None,
    rhi_after: int | None,
) -> None:
    policy = POLICIES[policy_name]
    state: ChildState | None = None
    if with_profile:
        state, _ = apply(None, profile(T0), T0, policy)
    state, opening = apply(state, absence(T0, flags=flags), T0, policy)
    assert state.open_episode is not None
    episode_code, tier = state.open_episode.code, state.open_episode.tier
    # Other actors' events at fixed minutes after last seen, in time order.
    planned: list[tuple[datetime, str]] = []
    if ack_after is not None:
        planned.append((T0 + minutes(ack_after), "ack"))
    if return_after is not None:
        planned.append((T0 + minutes(return_after), "return"))
        if rhi_after is not None:
            planned.append((T0 + minutes(return_after + rhi_after), "rhi"))
    planned.sort()
    fired: list[tuple[datetime, Alert]] = [(T0, a) for a in opening.alerts]
    horizon = T0 + timedelta(days=5)

    def actor_event(kind: str, at: datetime) -> InputEvent:
        if kind == "ack":
            return ack(at, episode_code)
        if kind == "return":
            return returned(at, at)
        return rhi(at, episode_code)

    while True:
        due = next_due_at(state, policy)
        while planned and (due is None or planned[0][0] <= due):
            at, kind = planned.pop(0)
            state, effects = apply(state, actor_event(kind, at), at, policy)
            fired.extend((at, a) for a in effects.alerts if a.kind is not AlertKind.RETURNED)
            due = next_due_at(state, policy)
        if due is None or due > horizon:
            break
        just_before = due - timedelta(seconds=1)
        early = apply(state, timer(just_before, episode_code), just_before, policy)[1]
        assert early.alerts == [], "next_due_at must be the earliest moment anything fires"
        state, effects = apply(state, timer(due, episode_code), due, policy)
        assert effects.alerts, "a TimerDue at next_due_at must fire something"
        for record in effects.records:
            if record.action == "step_fired":
                assert record.detail.as_dict()["due_at"] == due.isoformat(), "fired late"
        fired.extend((due, a) for a in effects.alerts)

    acked_at = T0 + minutes(ack_after) if ack_after is not None else None
    back_at = T0 + minutes(return_after) if return_after is not None else None

    def should_fire(step: Step) -> bool:
        due = T0 + step.after
        if due == T0:
            return True  # fired by the report itself, before any other event
        silenced = step.until_acknowledged and acked_at is not None and acked_at <= due
        if silenced or due > horizon:
            return False
        if back_at is None or due < back_at:
            return True
        # Due exactly at the return: only an acknowledgement applied just before it sees it due.
        return acked_at is not None and due <= acked_at <= back_at

    expected = {step.id for step in policy.escalation.tiers[tier].steps if should_fire(step)}
    steps = ladder_steps(policy)
    ladder_fired = {(at, a.step_id) for at, a in fired if a.step_id in steps}
    assert {step_id for _, step_id in ladder_fired} == expected
    for at, step_id in ladder_fired:
        assert at == T0 + steps[step_id].after, "lateness must be zero"
    assert all(a.tier is tier for _, a in fired)
