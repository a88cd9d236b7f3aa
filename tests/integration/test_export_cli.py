"""`missing-alerts export ssda903` reads the audit topic of a real pipeline run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.events import ReturnInterviewRecorded
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.kafka import read_topic
from tests.support.worker import REPO, WorkerProcess

pytestmark = pytest.mark.integration


async def test_export_writes_missing_table_and_rhi(
    worker: WorkerProcess, pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    first, second = ev.absence("E1", seen_ago=timedelta(hours=1)), ev.absence("E2")
    await produce(env, ev.profile("E1"), first, ev.profile("E2"), second)
    alerts = await wait_alerts(env, lambda a: {x["child_ref"] for x in a} >= {"E1", "E2"})
    code = next(a["episode_code"] for a in alerts if a["child_ref"] == "E1")
    await produce(env, ev.returned("E1", code))
    await asyncio.sleep(1)
    today = datetime.now(UTC).date()
    rhi = ReturnInterviewRecorded(
        occurred_at=datetime.now(UTC),
        child_ref="E1",
        episode_code=code,
        offered_on=today,
        accepted=False,
    )
    await produce(env, rhi)

    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events"
    for _ in range(40):
        records = await read_topic(
            env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic, until=10_000, within=1
        )
        if any(r["action"] == "return_interview_recorded" for r in records):
            break
    rhi_path = tmp_path / "rhi.csv"
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "streams.cli",
            "export",
            "ssda903",
            "--from",
            (today - timedelta(days=30)).isoformat(),
            "--to",
            today.isoformat(),
            "--rhi-out",
            str(rhi_path),
        ],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    def dmy(value: datetime) -> str:
        return value.strftime("%d/%m/%Y")

    returned_on = dmy(datetime.now(UTC))  # the return was stamped moments ago
    rows = result.stdout.splitlines()
    assert len(rows) == 3, result.stderr
    assert rows[0] == "CHILD,DOB,MISSING,MIS_START,MIS_END"
    assert sorted(rows[1:]) == [
        f"E1,01/06/2010,M,{dmy(first.last_seen_at)},{returned_on}",
        f"E2,01/06/2010,M,{dmy(second.last_seen_at)},",  # still open: MIS_END blank
    ]
    assert rhi_path.read_text().splitlines() == [
        "CHILD,MIS_START,RHI_OFFERED,RHI_OFFERED_DATE,RHI_ACCEPTED",
        f"E1,{dmy(first.last_seen_at)},Y,{dmy(datetime.combine(today, datetime.min.time()))},N",
    ]
