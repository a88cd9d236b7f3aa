"""With the broker down the API answers 503 with Retry-After and writes nothing half-way; after
the broker is back, retrying with the same Idempotency-Key yields exactly one episode."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_escalation import wait_alerts
from tests.support.kafka import read_topic
from tests.support.settle import engine_settled
from tests.support.worker import REPO, WorkerProcess

pytestmark = pytest.mark.integration
SCRIPT = str(REPO / "scripts" / "kafka-local")


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    env = {**os.environ, "KAFKA_LOCAL_DIR": str(tmp_path / "kafka")}
    out = subprocess.run([SCRIPT, "start"], env=env, check=True, capture_output=True, text=True)
    try:
        yield env, out.stdout.strip()
    finally:
        subprocess.run([SCRIPT, "stop"], env=env, check=False, capture_output=True)


async def test_503_while_broker_down_then_one_episode_after_retry(
    private_broker: tuple[dict[str, str], str],
    pipeline_env: dict[str, str],
    worker: WorkerProcess,
) -> None:
    broker_env, bootstrap = private_broker
    pipeline_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"] = bootstrap
    pipeline_env["MISSING_ALERTS_API_PRODUCE_TIMEOUT_S"] = "3"
    worker.start()
    worker.wait_ready()
    url = pipeline_env["MISSING_ALERTS_PUBLIC_BASE_URL"] + "/v1/absences"
    headers = {
        "Authorization": "Bearer dev-carer-LA-EXAMPLE",
        "Content-Type": "application/json",
        "Idempotency-Key": "outage-1",
    }
    body = json.dumps(
        {"child_ref": "OUT1", "last_seen_at": "2026-11-28T10:00:00Z", "reporter": {"role": "carer"}}
    )

    stop = await asyncio.to_thread(
        subprocess.run, [SCRIPT, "stop"], env=broker_env, capture_output=True, text=True
    )
    assert stop.returncode == 0, stop.stderr
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"].isdigit()
            assert (await resp.json())["error"] == "unavailable"

        start = await asyncio.to_thread(
            subprocess.run, [SCRIPT, "start"], env=broker_env, capture_output=True, text=True
        )
        assert start.returncode == 0, start.stderr
        status = 0
        for _ in range(60):  # the client retries, as Retry-After asks
            async with session.post(url, data=body, headers=headers) as resp:
                status = resp.status
            if status == 202:
                break
            await asyncio.sleep(1)
        assert status == 202, worker.logs()[-3000:]

    prefix = pipeline_env["MISSING_ALERTS_TOPIC_PREFIX"]
    await wait_alerts(pipeline_env, lambda a: any(x["child_ref"] == "OUT1" for x in a))
    await engine_settled(pipeline_env)  # a late copy of the first attempt is applied by now
    alerts = await wait_alerts(pipeline_env, lambda a: True, within=2)
    episodes = {a["episode_code"] for a in alerts if a["child_ref"] == "OUT1"}
    assert len(episodes) == 1
    events = await read_topic(bootstrap, f"{prefix}.events", until=10, within=5)
    # The timed-out first attempt may still reach Kafka once the broker is back; it carries the
    # same event id as the retry, so the engine counts it once.
    assert len({e["event_id"] for e in events if e["child_ref"] == "OUT1"}) == 1
