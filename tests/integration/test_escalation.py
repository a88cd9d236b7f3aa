"""The episode engine on a real broker: ladders fire on time from last-seen, acknowledgements
stop the unacknowledged steps, returns close the episode and tell everyone notified."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas.common import RiskFlag
from tests.support import events as ev
from tests.support.clock import TestClock
from tests.support.kafka import produce_raw, read_topic
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration
TRAFFICKING = frozenset({RiskFlag.TRAFFICKING_SUSPECTED})


async def wait_alerts(
    env: dict[str, str], predicate: Any, *, within: float = 40.0
) -> list[dict[str, Any]]:
    """Re-read the alerts topic until ``predicate(alerts)`` holds (or time runs out)."""
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.alerts"
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    deadline = time.monotonic() + within
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alerts = await read_topic(bootstrap, topic, until=10_000, within=1.0)
        if predicate(alerts):
            return alerts
        await asyncio.sleep(0.5)
    return alerts


def steps_for(alerts: list[dict[str, Any]], child: str) -> list[str]:
    return [a["step_id"] for a in alerts if a["child_ref"] == child]


async def produce(env: dict[str, str], *events: Any) -> None:
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.events"
    await produce_raw(env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic, [ev.record(e) for e in events])


async def test_high_risk_absence_escalates_on_time(
    worker: WorkerProcess, pipeline_env: dict[str, str], clock: TestClock
) -> None:
    """The shipped high ladder (T+0, T+30m unacknowledged, T+2h milestone), on a moved clock."""
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    absence = ev.absence("C100", flags=TRAFFICKING)
    await produce(env, ev.profile("C100"), absence)
    await wait_alerts(env, lambda a: "high-t0" in steps_for(a, "C100"))
    clock.advance(timedelta(minutes=30))
    await wait_alerts(env, lambda a: "high-t30m" in steps_for(a, "C100"))
    clock.advance(timedelta(minutes=90))
    alerts = await wait_alerts(env, lambda a: "high-t2h" in steps_for(a, "C100"))
    # Re-notify of the unacknowledged T+30m step (every 15 min) comes on top; each step once.
    ladder = [s for s in steps_for(alerts, "C100") if "+r" not in s]
    assert ladder == ["high-t0", "high-t30m", "high-t2h"], worker.logs()[-2000:]
    by_step = {a["step_id"]: a for a in alerts}
    t0 = by_step["high-t0"]
    assert set(t0["roles"]) == {"duty_social_worker", "police_liaison"}
    assert t0["tier"] == "high" and t0["initials"] == "JD"
    seen = absence.last_seen_at
    # Never early: each step decided at or after last-seen + its delay, on the worker's clock.
    for step, delay in (("high-t30m", 30), ("high-t2h", 120)):
        fired = datetime.fromisoformat(by_step[step]["occurred_at"])
        assert fired >= seen + timedelta(minutes=delay), (step, fired, seen)
    assert set(by_step["high-t30m"]["roles"]) == {"team_manager", "out_of_hours_team"}


async def test_acknowledgement_stops_unacknowledged_steps_not_milestones(
    worker: WorkerProcess, pipeline_env: dict[str, str], clock: TestClock
) -> None:
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("C200"), ev.absence("C200", flags=TRAFFICKING))
    first = await wait_alerts(env, lambda a: "high-t0" in steps_for(a, "C200"))
    code = next(a["episode_code"] for a in first if a["child_ref"] == "C200")
    await produce(env, ev.ack("C200", code))
    await wait_records(env, lambda r: any(x["action"] == "acknowledged" for x in r))
    clock.advance(timedelta(hours=2))
    alerts = await wait_alerts(env, lambda a: "high-t2h" in steps_for(a, "C200"))
    # The unacknowledged T+30m step and the re-notifies are skipped; the T+2h "still missing"
    # milestone fires all the same.
    assert steps_for(alerts, "C200") == ["high-t0", "high-t2h"]


async def test_return_closes_episode_and_notifies_everyone_told(
    worker: WorkerProcess, pipeline_env: dict[str, str], clock: TestClock
) -> None:
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("C300"), ev.absence("C300", flags=TRAFFICKING))
    first = await wait_alerts(env, lambda a: "high-t0" in steps_for(a, "C300"))
    code = next(a["episode_code"] for a in first if a["child_ref"] == "C300")
    await produce(env, ev.returned("C300", code))

    alerts = await wait_alerts(env, lambda a: "returned" in steps_for(a, "C300"))
    back = next(a for a in alerts if a["step_id"] == "returned")
    assert back["kind"] == "returned"
    assert set(back["roles"]) == {"duty_social_worker", "police_liaison"}
    # Closed: none of the ladder ever fires. Two days on, the return home interview reminder
    # falls due: once it is there the timer has run past every ladder step, and none fired.
    clock.advance(timedelta(hours=49))
    alerts = await wait_alerts(env, lambda a: "rhi-reminder" in steps_for(a, "C300"))
    assert steps_for(alerts, "C300") == ["high-t0", "returned", "rhi-reminder"]

    records = await read_topic(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events",
        until=10_000,
        within=3,
    )
    actions = [r["action"] for r in records if r["episode_code"] == code]
    assert actions[0] == "opened" and "closed" in actions


async def wait_records(
    env: dict[str, str], predicate: Any, *, within: float = 40.0
) -> list[dict[str, Any]]:
    """Re-read the audit topic until ``predicate(records)`` holds (or time runs out)."""
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events"
    deadline = time.monotonic() + within
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = await read_topic(
            env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic, until=10_000, within=1
        )
        if predicate(records):
            return records
        await asyncio.sleep(0.3)
    return records
