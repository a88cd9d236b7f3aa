"""A reporting year through the real pipeline (issue 13, part 5): a worker process on a real
broker, its clock moved through the year three days at a time, fed 320 children's episodes
(tests/support/year.py) with a third of the events delivered late or out of order; then the
real export CLI. Every period must come out once, with the right London dates and category,
and the table must break none of the DfE rules docs/ssda903.md lists."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer

from streams.ssda903.rules import check_missing_table
from tests.support import events as ev
from tests.support.clock import TestClock
from tests.support.kafka import read_topic
from tests.support.settle import engine_settled
from tests.support.worker import WorkerProcess, run_cli
from tests.support.year import YEAR_END, YEAR_START, expected_rows, generate, in_arrival_order

pytestmark = pytest.mark.integration
STEP = timedelta(days=3)


async def test_a_reporting_year_through_the_pipeline_exports_every_period_right(
    worker: WorkerProcess, pipeline_env: dict[str, str], clock: TestClock
) -> None:
    env = pipeline_env
    year = generate()
    arrivals = in_arrival_order(year)
    assert len(year.periods) >= 1000 and year.late_or_reordered >= 300
    at = arrivals[0][0]
    clock.advance(at - clock.now())  # the worker lives in the reporting year
    worker.start()
    worker.wait_ready(timeout=120)
    producer = AIOKafkaProducer(bootstrap_servers=env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], acks="all")
    await producer.start()
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.events"
    try:
        sent = 0
        while sent < len(arrivals):
            at += STEP
            clock.advance(at - clock.now())
            while sent < len(arrivals) and arrivals[sent][0] <= at:
                key, value = ev.record(arrivals[sent][1])  # type: ignore[arg-type]
                await producer.send(topic, value, key=key)
                sent += 1
            await producer.flush()
            await engine_settled(env, within=90)  # each step applied at its own time
    finally:
        await producer.stop()

    window = ("--from", YEAR_START.isoformat(), "--to", YEAR_END.isoformat())
    result = await asyncio.to_thread(run_cli, env, "export", "ssda903", *window)
    assert result.returncode == 0, result.stderr
    got, want = result.stdout.splitlines()[1:], expected_rows(year)
    wrong = (Counter(got) - Counter(want)) + (Counter(want) - Counter(got))
    print(f"year round trip: {len(want)} periods expected, {len(got)} exported, {len(wrong)} wrong")
    if wrong:
        dead = await read_topic(
            env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
            f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.dead-letters",
            until=10_000,
            within=5,
        )
        reasons = Counter(d.get("reason") for d in dead)
        raise AssertionError(
            f"{len(wrong)} periods wrong, e.g. {sorted(wrong)[:6]}; dead letters: {reasons}"
        )
    assert check_missing_table(result.stdout) == []
