"""SIGKILL the worker with episodes open and steps about to fall due; restart it; every due
step fires exactly once, none early, counted on the alerts topic."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas.common import RiskFlag
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.clock import TestClock
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration
CHILDREN = [f"K{i:03d}" for i in range(30)]


@pytest.mark.parametrize("lose_local_disk", [False, True], ids=["same-disk", "new-disk"])
async def test_due_steps_fire_exactly_once_across_sigkill(
    worker: WorkerProcess, pipeline_env: dict[str, str], clock: TestClock, lose_local_disk: bool
) -> None:
    """new-disk: the restarted worker has no RocksDB files and must rebuild the episodes table
    from its Kafka changelog (a pod rescheduled onto another node)."""
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    absences = {c: ev.absence(c, flags=frozenset({RiskFlag.CSE})) for c in CHILDREN}
    await produce(env, *[ev.profile(c) for c in CHILDREN], *absences.values())
    await wait_alerts(env, lambda a: sum(x["step_id"] == "high-t0" for x in a) == len(CHILDREN))

    worker.kill()  # SIGKILL: no flush, no commit, no goodbye to the group
    # The T+30m step falls due for every child while no worker is running (the T+2h milestone
    # is moved to, later, with the worker up again).
    clock.advance(timedelta(minutes=31))
    if lose_local_disk:
        shutil.rmtree(env["MISSING_ALERTS_DATA_DIR"])
    worker.start()
    worker.wait_ready(timeout=120)

    def due(step: str) -> Any:
        return lambda alerts: sum(a["step_id"] == step for a in alerts) == len(CHILDREN)

    await wait_alerts(env, due("high-t30m"), within=90)
    clock.advance(timedelta(minutes=90))
    alerts = await wait_alerts(env, due("high-t2h"), within=90)
    # Re-notifies of the unacknowledged T+30m step come on top; they are counted elsewhere.
    alerts = [a for a in alerts if "+r" not in str(a["step_id"])]
    counts = Counter((a["child_ref"], a["step_id"]) for a in alerts)
    expected = {(c, s) for c in CHILDREN for s in ("high-t0", "high-t30m", "high-t2h")}
    assert set(counts) == expected, sorted(set(counts) ^ expected)
    duplicates = {k: n for k, n in counts.items() if n != 1}
    assert not duplicates, duplicates
    for alert in alerts:
        seen = absences[str(alert["child_ref"])].last_seen_at
        delay = {"high-t0": 0, "high-t30m": 30, "high-t2h": 120}[str(alert["step_id"])]
        assert datetime.fromisoformat(str(alert["occurred_at"])) >= seen + timedelta(minutes=delay)
