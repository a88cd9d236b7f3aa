"""Exactly once on a three-broker cluster (scripts/kafka-local start --brokers 3: one KRaft
controller, three brokers, replication factor 3, min.insync.replicas 2): the leader of the
alerts partition, then the leader of the engine's changelog partition, is killed while
absences keep coming; nothing is lost, nothing is doubled, the pipeline carries on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from schemas.common import RiskFlag
from tests.integration.test_escalation import wait_alerts
from tests.support import events as ev
from tests.support.fake_twilio import FakeTwilio
from tests.support.settle import dispatch_settled, engine_settled
from tests.support.worker import REPO, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
SCRIPT = str(REPO / "scripts" / "kafka-local")
FLAGS = frozenset({RiskFlag.CSE})


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A three-broker cluster for the session (or the one in ..._TEST_KAFKA_CLUSTER_DIR)."""
    given = os.environ.get("MISSING_ALERTS_TEST_KAFKA_CLUSTER_DIR")
    state = Path(given) if given else tmp_path_factory.mktemp("kafka-cluster")
    env = {**os.environ, "KAFKA_LOCAL_DIR": str(state)}
    out = subprocess.run(
        [SCRIPT, "start", "--brokers", "3"], env=env, check=True, capture_output=True, text=True
    )
    try:
        yield {"bootstrap": out.stdout.strip().splitlines()[-1], "dir": str(state)}
    finally:
        if not given:
            subprocess.run([SCRIPT, "clean"], env=env, check=False, capture_output=True)


def broker_ctl(cluster: dict[str, str], command: str, broker: int) -> None:
    env = {**os.environ, "KAFKA_LOCAL_DIR": cluster["dir"]}
    done = subprocess.run([SCRIPT, command, str(broker)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def cluster_env(api_env: dict[str, str], cluster: dict[str, str]) -> dict[str, str]:
    api_env.update(
        {
            "MISSING_ALERTS_KAFKA_BOOTSTRAP": cluster["bootstrap"],
            "MISSING_ALERTS_TOPIC_REPLICATION": "3",
            "MISSING_ALERTS_TOPIC_MIN_INSYNC_REPLICAS": "2",
            "MISSING_ALERTS_PROCESSING_GUARANTEE": "exactly_once",
        }
    )
    return api_env


async def leader(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return next(
            int(p["leader"]) for p in described["partitions"] if p["partition"] == partition
        )
    finally:
        await admin.close()


async def wait_leader_moves(bootstrap: str, topic: str, partition: int, dead: int) -> int:
    deadline = time.monotonic() + 60
    while (now := await leader(bootstrap, topic, partition)) in (dead, -1):
        assert time.monotonic() < deadline, f"{topic}/{partition} has no new leader"
        await asyncio.sleep(0.5)
    return now


class Feed:
    """Absences for fresh children, produced like an integrator does (acks=all, retries)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[str] = []
        self.producer = AIOKafkaProducer(
            bootstrap_servers=env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60_000,
        )

    async def wave(self, size: int) -> None:
        topic = f"{self.env['MISSING_ALERTS_TOPIC_PREFIX']}.events"
        futures = []
        for _ in range(size):
            child = f"L{len(self.children):03d}"
            self.children.append(child)
            for event in (ev.profile(child), ev.absence(child, flags=FLAGS)):
                key, value = ev.record(event)
                futures.append(await self.producer.send(topic, value, key=key))
        await asyncio.gather(*futures)


def t0_counts(alerts: list[dict[str, Any]], children: list[str]) -> Counter[str]:
    return Counter(
        str(a["child_ref"])
        for a in alerts
        if a["step_id"] == "high-t0" and a["child_ref"] in children
    )


async def test_leaders_killed_under_load_lose_and_double_nothing(
    cluster: dict[str, str],
    cluster_env: dict[str, str],
    worker: WorkerProcess,
    twilio: FakeTwilio,
) -> None:
    env = cluster_env
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    worker.start()
    worker.wait_ready(timeout=180)
    feed = Feed(env)
    await feed.producer.start()
    try:
        await feed.wave(10)
        prefix, app = env["MISSING_ALERTS_TOPIC_PREFIX"], env["MISSING_ALERTS_APP_ID"]
        for topic in (f"{prefix}.alerts", f"{app}-episodes-changelog"):
            victim = await leader(bootstrap, topic, 0)
            broker_ctl(cluster, "kill-broker", victim)
            await feed.wave(10)  # under load while the partition elects a new leader
            await wait_leader_moves(bootstrap, topic, 0, victim)
            await feed.wave(10)
            broker_ctl(cluster, "start-broker", victim)
        await feed.wave(10)
        children = feed.children
        alerts = await wait_alerts(
            env, lambda a: set(t0_counts(a, children)) == set(children), within=180
        )
        await engine_settled(env, within=120)
        await dispatch_settled(env, within=120)
        alerts = await wait_alerts(env, lambda _a: True, within=5)
        counts = t0_counts(alerts, children)
        assert set(counts) == set(children), sorted(set(children) - set(counts))
        assert set(counts.values()) == {1}, {c: n for c, n in counts.items() if n != 1}
        sms = Counter((r.to, r.body) for r in twilio.requests if r.message_sid)
        assert sms and set(sms.values()) == {1}, [k for k, n in sms.items() if n > 1]
        assert sum(1 for (_, body) in sms if body and "MISSING" in body) >= 2 * len(children)
    finally:
        await feed.producer.stop()
