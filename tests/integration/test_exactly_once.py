"""Exactly once, proven under faults, on a real broker with real processes (issue #12).

For every failpoint (streams/runtime/failpoints.py) a worker is crashed exactly there while 30
episodes have a step falling due; a restarted worker must then have decided every due step
exactly once on the alerts topic (read_committed), none early, and every person must have had
each SMS once, except a message that was in flight at the provider when dispatch crashed (the
one window Twilio's API leaves open, counted here). Two workers: one crashed mid-batch, the
other takes over. A frozen engine resumed after its partitions moved is fenced and adds
nothing a reader sees. Conditions with deadlines only; time moves with the test clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.common import RiskFlag
from streams.runtime.failpoints import EXIT_CODE
from tests.integration.test_engine_process import engine_pid
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.clock import TestClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.kafka import keys_to_end
from tests.support.settle import dispatch_settled, engine_settled
from tests.support.worker import WorkerProcess, free_port

pytestmark = pytest.mark.integration
CHILDREN = [f"X{i:02d}" for i in range(30)]
FLAGS = frozenset({RiskFlag.CSE})
DELAY = {"high-t0": timedelta(0), "high-t30m": timedelta(minutes=30)}


@pytest.fixture
def eos_env(api_env: dict[str, str], clock: TestClock) -> dict[str, str]:
    api_env["MISSING_ALERTS_PROCESSING_GUARANTEE"] = "exactly_once"
    return api_env


def run(env: dict[str, str], log: Path, **extra: str) -> WorkerProcess:
    proc = WorkerProcess(env={**env, **extra}, log_path=log)
    proc.start()
    proc.wait_ready()
    return proc


def exit_code(worker: WorkerProcess, within: float = 60) -> int:
    assert worker.proc is not None
    try:
        return worker.proc.wait(timeout=within)
    except Exception:
        raise AssertionError(f"still running:\n{worker.logs()[-3000:]}") from None


def ladder(alerts: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(child, step) of every ladder step decided (re-notifies left out)."""
    return Counter(
        (str(a["child_ref"]), str(a["step_id"]))
        for a in alerts
        if a["child_ref"] in CHILDREN and "+r" not in str(a["step_id"])
    )


def assert_exactly_once(
    alerts: list[dict[str, Any]], steps: tuple[str, ...], absences: dict[str, Any]
) -> None:
    got = ladder(alerts)
    want = {(c, s) for c in CHILDREN for s in steps}
    assert set(got) == want, sorted(set(got) ^ want)
    doubled = {k: n for k, n in got.items() if n != 1}
    assert not doubled, doubled
    for a in alerts:
        step = str(a["step_id"])
        if a["child_ref"] in absences and step in DELAY:
            seen = absences[str(a["child_ref"])].last_seen_at
            assert datetime.fromisoformat(str(a["occurred_at"])) >= seen + DELAY[step], a


def sms_sent(twilio: FakeTwilio) -> Counter[tuple[str | None, str | None]]:
    return Counter((r.to, r.body) for r in twilio.requests if r.message_sid)


def delivered(twilio: FakeTwilio, env: dict[str, str]) -> Counter[str]:
    """Every message a person received, by notification id: SMS at the fake Twilio (the id is
    in the status callback URL), email in the outbox file (no SMTP server in this test)."""
    got: Counter[str] = Counter()
    for r in twilio.requests:
        if r.message_sid and r.notification_id:
            got[r.notification_id] += 1
    outbox = Path(env["MISSING_ALERTS_OUTBOX_PATH"])
    if outbox.exists():
        for line in outbox.read_text().splitlines():
            if line.strip():
                got[json.loads(line)["notification_id"]] += 1
    return got


async def steps_due(env: dict[str, str], step: str) -> list[dict[str, Any]]:
    alerts = await wait_alerts(
        env, lambda a: sum(1 for (_, s) in ladder(a) if s == step) >= len(CHILDREN), within=90
    )
    return alerts


@pytest.mark.parametrize(
    "point",
    [
        "engine.after_produce_before_commit",
        "engine.after_commit_before_store",
        "engine.after_store_before_poll",
        "dispatch.after_send_before_record",
        "dispatch.after_record_before_ack",
    ],
)
async def test_a_crash_at_each_failpoint_loses_nothing_and_doubles_nothing(
    point: str, eos_env: dict[str, str], clock: TestClock, twilio: FakeTwilio, tmp_path: Path
) -> None:
    env = eos_env
    absences = {c: ev.absence(c, flags=FLAGS) for c in CHILDREN}
    first = run(env, tmp_path / "run1.log")
    await produce(env, *[ev.profile(c) for c in CHILDREN], *absences.values())
    await steps_due(env, "high-t0")
    await dispatch_settled(env)
    assert first.stop() == 0

    # Run 2 is armed: the T+30m steps fall due for all 30 children, and the first batch (or
    # message) of them crashes exactly at the point.
    armed = run(env, tmp_path / "run2.log", MISSING_ALERTS_FAILPOINTS=point)
    before = delivered(twilio, env)
    clock.advance(timedelta(minutes=31))
    code = exit_code(armed)
    assert code in (EXIT_CODE, 3), armed.logs()[-3000:]  # 3: the engine died, the worker followed
    assert f"failpoint {point} reached" in armed.logs()
    # Reached a person in run 2 but not yet recorded at its crash: the only ones that may come
    # twice. Dispatch runs many records at once, so whichever point fires, other messages may
    # be between their provider's answer and their record's flush at that instant.
    recorded = await keys_to_end(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{env['MISSING_ALERTS_APP_ID']}-deliveries-changelog",
    )
    in_flight = set(delivered(twilio, env)) - set(before) - recorded

    third = run(env, tmp_path / "run3.log")
    try:
        alerts = await steps_due(env, "high-t30m")
        await engine_settled(env)
        await dispatch_settled(env)
        assert_exactly_once(alerts, ("high-t0", "high-t30m"), absences)
        sent = delivered(twilio, env)
        doubled = {k for k, n in sent.items() if n > 1}
        # The provider took it, dispatch died before writing it down: the only window.
        assert doubled <= in_flight, (in_flight, doubled)
        if point == "dispatch.after_send_before_record":
            assert in_flight, "the crash came after a send, so that message was unrecorded"
        print(f"{point}: {len(in_flight)} sent and unrecorded at the crash, {len(doubled)} twice")
        # Two steps, at least two people each, SMS and email.
        assert len(sent) >= 2 * len(CHILDREN) * 2 * 2
    finally:
        third.stop()


@pytest.fixture
def second(eos_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    port = free_port()
    return {
        **eos_env,
        "MISSING_ALERTS_WEB_PORT": str(port),
        "MISSING_ALERTS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MISSING_ALERTS_DATA_DIR": str(tmp_path / "var-b"),
    }


async def test_two_workers_one_crashed_mid_batch_the_other_takes_over(
    eos_env: dict[str, str], second: dict[str, str], clock: TestClock, tmp_path: Path
) -> None:
    absences = {c: ev.absence(c, flags=FLAGS) for c in CHILDREN}
    a = run(
        eos_env,
        tmp_path / "a.log",
        MISSING_ALERTS_FAILPOINTS="engine.after_produce_before_commit:3",
    )
    b = run(second, tmp_path / "b.log")
    try:
        await produce(eos_env, *[ev.profile(c) for c in CHILDREN])
        for c in CHILDREN:  # one by one: many batches, so the third one crashes mid-stream
            await produce(eos_env, absences[c])
        assert exit_code(a, 90) in (EXIT_CODE, 3)
        alerts = await steps_due(eos_env, "high-t0")
        clock.advance(timedelta(minutes=31))
        alerts = await steps_due(eos_env, "high-t30m")
        await engine_settled(eos_env)
        assert_exactly_once(alerts, ("high-t0", "high-t30m"), absences)
    finally:
        b.stop()
        a.stop()


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]


async def test_a_frozen_engine_resumed_after_its_partitions_moved_is_fenced(
    eos_env: dict[str, str], second: dict[str, str], tmp_path: Path
) -> None:
    """The engine stops itself (SIGSTOP) in the middle of a transaction: records sent, not
    committed. Its session runs out, the other worker's engine takes the partitions and fences
    the frozen one's transactional ids. Resumed, the frozen engine's commit is refused: a
    read_committed reader never sees what it was doing, and every alert is there once."""
    absences = {c: ev.absence(c, flags=FLAGS) for c in CHILDREN}
    a = run(
        eos_env,
        tmp_path / "a.log",
        MISSING_ALERTS_FAILPOINTS="engine.after_produce_before_commit:2:stop",
    )
    frozen = engine_pid(a)
    b = None
    try:
        await produce(eos_env, *[ev.profile(c) for c in CHILDREN])
        await produce(eos_env, *absences.values())
        deadline = time.monotonic() + 60
        while process_state(frozen) != "T":
            assert time.monotonic() < deadline, a.logs()[-3000:]
            await asyncio.sleep(0.2)
        b = run(second, tmp_path / "b.log")
        alerts = await steps_due(eos_env, "high-t0")  # b did all of it, the frozen part too
        os.kill(frozen, signal.SIGCONT)
        # The resumed engine is fenced: it stops, and its worker with it.
        assert exit_code(a, 90) != 0
        assert "Fenced" in a.logs() or "fenced" in a.logs(), a.logs()[-3000:]
        await engine_settled(eos_env)
        alerts = await wait_alerts(eos_env, lambda _a: True, within=2)
        assert_exactly_once(alerts, ("high-t0",), absences)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)
        if b is not None:
            b.stop()
        a.stop()
