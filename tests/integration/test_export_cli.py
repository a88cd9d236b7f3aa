"""`missing-alerts export ssda903` reads the audit topic of a real pipeline run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas.events import ReturnInterviewRecorded
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.kafka import read_topic
from tests.support.worker import WorkerProcess, run_cli

pytestmark = pytest.mark.integration
LONDON = ZoneInfo("Europe/London")


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
    today = datetime.now(LONDON).date()
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
    window = ("--from", str(today - timedelta(days=30)), "--to", today.isoformat())
    result = await asyncio.to_thread(
        run_cli, env, "export", "ssda903", *window, "--rhi-out", str(rhi_path)
    )
    assert result.returncode == 0, result.stderr

    def dmy(value: datetime) -> str:  # the export writes London dates
        return value.astimezone(LONDON).strftime("%d/%m/%Y")

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
        f"E1,{dmy(first.last_seen_at)},Y,{today:%d/%m/%Y},N",
    ]


async def _imported_records(env: dict[str, str], count: int) -> list[dict[str, object]]:
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events"
    deadline = time.monotonic() + 60
    while True:
        records = await read_topic(
            env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic, until=10_000, within=1
        )
        done = [r for r in records if r["detail"].get("reason") in ("imported", "duplicate_event")]
        if len(done) >= count or time.monotonic() > deadline:
            return records


async def test_import_brings_history_in_without_alerts_and_the_export_gives_it_back(
    worker: WorkerProcess, pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    """The real CLI against the real pipeline: import a table, export the same year, get the
    same rows; import it again and nothing changes; a bad row is refused by number."""
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    this_year = datetime.now(UTC).date() - timedelta(days=60)
    day = this_year.strftime("%d/%m/%Y")
    next_day = (this_year + timedelta(days=1)).strftime("%d/%m/%Y")
    rows = [
        "CHILD,DOB,MISSING,MIS_START,MIS_END",
        f"H1,01/06/2010,M,{day},{next_day}",
        f"H1,01/06/2010,A,{next_day},{next_day}",
        f"H2,14/02/2011,A,{day},{day}",
    ]
    table = tmp_path / "missing.csv"
    table.write_text("\n".join(rows) + "\n")
    first = await asyncio.to_thread(run_cli, env, "import", "ssda903", str(table))
    assert first.returncode == 0, first.stderr
    assert "sent 3 periods, refused 0 rows" in first.stdout
    records = await _imported_records(env, 6)  # opened + closed for each

    window = (
        "--from",
        (this_year - timedelta(days=1)).isoformat(),
        "--to",
        str(this_year + timedelta(days=1)),
    )
    exported = await asyncio.to_thread(run_cli, env, "export", "ssda903", *window)
    assert exported.returncode == 0, exported.stderr
    assert sorted(exported.stdout.splitlines()[1:]) == sorted(rows[1:])
    alerts_topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.alerts"
    assert (
        await read_topic(env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], alerts_topic, until=1, within=3)
        == []
    )

    again = await asyncio.to_thread(run_cli, env, "import", "ssda903", str(table))
    assert again.returncode == 0, again.stderr
    after = await _imported_records(env, 9)
    assert len(after) > len(records)  # the repeat was processed (and recorded as ignored)
    exported_again = await asyncio.to_thread(run_cli, env, "export", "ssda903", *window)
    assert exported_again.stdout == exported.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text(rows[0] + "\n" + f"H3,01/06/2010,X,{day},{day}\n")
    refused = await asyncio.to_thread(run_cli, env, "import", "ssda903", str(bad))
    assert refused.returncode == 1
    assert "refused: row 2: MISSING: must be M or A" in refused.stderr
