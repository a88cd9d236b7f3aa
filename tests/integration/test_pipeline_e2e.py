"""End to end on a real broker: an absence produced with aiokafka reaches the outbox; bad input
becomes a dead letter with its reason and does not stop the stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.kafka import produce_raw, read_topic, wait_for_lines
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


def _absence(child: str, *, minutes_ago: int = 5) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "type": "absence",
            "schema_version": 1,
            "child_ref": child,
            "occurred_at": now.isoformat(),
            "last_seen_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
            "category": "missing",
            "reporter": {"role": "carer"},
            "reported_flags": ["trafficking_suspected"],
        }
    ).encode()


async def test_absence_reaches_outbox_and_bad_input_is_dead_lettered(
    worker: WorkerProcess, pipeline_env: dict[str, str]
) -> None:
    bootstrap = pipeline_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    prefix = pipeline_env["MISSING_ALERTS_TOPIC_PREFIX"]
    outbox = Path(pipeline_env["MISSING_ALERTS_OUTBOX_PATH"])
    worker.start()
    worker.wait_ready()

    bad_missing_field = json.dumps({"type": "absence", "child_ref": "C900"}).encode()
    await produce_raw(
        bootstrap,
        f"{prefix}.events",
        [
            (b"C900", b"not json at all"),
            (b"C900", bad_missing_field),
            (b"C123", _absence("C123")),
        ],
    )

    # A high-risk absence with no profile: T+0 goes to duty social worker and police liaison,
    # SMS and email each; with no credentials both land in the outbox.
    lines = wait_for_lines(outbox, 2, timeout=60)
    assert lines, f"no outbox line; worker log:\n{worker.logs()[-3000:]}"
    assert {line["child_ref"] for line in lines} == {"C123"}
    codes = {line["episode_code"] for line in lines}
    assert len(codes) == 1
    code = codes.pop()
    sms = [line for line in lines if line["channel"] == "sms"]
    assert sms and all(f"ACK {code}" in line["body"] for line in sms)
    assert all(line["notification_id"].startswith(f"{code}:high-t0:") for line in lines)

    dead = await read_topic(bootstrap, f"{prefix}.dead-letters", until=2, within=30)
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["invalid_event", "invalid_event"]
    fields = {e["field"] for d in dead for e in d["errors"]}
    assert "absence.occurred_at" in fields and "absence.last_seen_at" in fields

    alerts = await read_topic(bootstrap, f"{prefix}.alerts", until=1, within=30)
    assert [a["episode_code"] for a in alerts] == [code]
    assert alerts[0]["tier"] == "high" and alerts[0]["profile_missing"] is True
