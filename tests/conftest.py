"""Shared fixtures. Integration tests get a real Kafka broker: the one scripts/test started
(MISSING_ALERTS_TEST_KAFKA), or one this session starts and stops itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import POLICY_DIR
from tests.support.api_keys import write_keys_file
from tests.support.clock import TestClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.worker import REPO, WorkerProcess, free_port, reap_all


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """Whatever worker a test left running (an assertion failed before its stop) is stopped
    here, before the next test shares the broker with it."""
    yield
    reap_all()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("MISSING_ALERTS_TEST_KAFKA")
    if given:
        yield given
        return
    state = tmp_path_factory.mktemp("kafka-local")
    env = {**os.environ, "KAFKA_LOCAL_DIR": str(state)}
    script = str(REPO / "scripts" / "kafka-local")
    out = subprocess.run([script, "start"], env=env, check=True, capture_output=True, text=True)
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run([script, "stop"], env=env, check=False)


@pytest.fixture
def pipeline_env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    """Settings for one isolated pipeline: own topics, consumer group, state and outbox."""
    run = uuid.uuid4().hex[:10]
    port = free_port()
    return {
        "MISSING_ALERTS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MISSING_ALERTS_APP_ID": f"test-{run}",
        "MISSING_ALERTS_TOPIC_PREFIX": f"test-{run}",
        "MISSING_ALERTS_TOPIC_PARTITIONS": "2",
        "MISSING_ALERTS_DATA_DIR": str(tmp_path / "var"),
        "MISSING_ALERTS_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
        "MISSING_ALERTS_WEB_PORT": str(port),
        "MISSING_ALERTS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MISSING_ALERTS_BROKER_SESSION_TIMEOUT_S": "6",
        "MISSING_ALERTS_LOG_FORMAT": "json",
        "MISSING_ALERTS_ENVIRONMENT": "test",
    }


@pytest.fixture
def clock(pipeline_env: dict[str, str], tmp_path: Path) -> TestClock:
    """The worker's clock, moved by the test (tests/support/clock.py)."""
    moved = TestClock(tmp_path / "clock-offset")
    pipeline_env["MISSING_ALERTS_TEST_CLOCK_FILE"] = str(moved.path)
    return moved


def short_ladder_policy(dest: Path) -> Path:
    """The shipped policy with the high ladder shortened to seconds: T+0, unacknowledged step at
    4 s, milestone at 8 s, no re-notify noise. Only for the test that measures how late the real
    timer is on real time (test_observability); ladders elsewhere run on a moved clock."""
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = dest / "escalation.yaml"
    text = path.read_text()
    text = text.replace("renotify_every: 15m", "renotify_every: 1h")
    text = text.replace("id: high-t30m\n        after: 30m", "id: high-t30m\n        after: 4s")
    text = text.replace("id: high-t2h\n        after: 2h", "id: high-t2h\n        after: 8s")
    path.write_text(text)
    assert "after: 4s" in text and "after: 8s" in text
    return dest


@pytest.fixture
def short_policy_env(pipeline_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    pipeline_env["MISSING_ALERTS_POLICY_DIR"] = str(short_ladder_policy(tmp_path / "policy"))
    return pipeline_env


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """A local HTTP fake of Twilio's REST API, in a thread (the worker is another process)."""
    fake = FakeTwilio()
    fake.run_in_thread()
    try:
        yield fake
    finally:
        fake.release()  # let hung requests finish so the server can stop
        fake.stop_thread()


@pytest.fixture
def worker(pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(env=pipeline_env, log_path=tmp_path / "worker.log")
    try:
        yield proc
    finally:
        proc.stop()
        artifacts = os.environ.get("MISSING_ALERTS_TEST_ARTIFACTS")
        if artifacts and proc.log_path.exists():
            dest = Path(artifacts)
            dest.mkdir(parents=True, exist_ok=True)
            (dest / f"{pipeline_env['MISSING_ALERTS_APP_ID']}.log").write_text(proc.logs())


@pytest.fixture
def api_env(pipeline_env: dict[str, str], tmp_path: Path, twilio: FakeTwilio) -> dict[str, str]:
    """A pipeline with the test API keys (tests/support/api_keys.py) and SMS to fake Twilio."""
    pipeline_env.update(
        {
            "MISSING_ALERTS_API_KEYS_FILE": str(write_keys_file(tmp_path / "keys.json")),
            "MISSING_ALERTS_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "MISSING_ALERTS_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "MISSING_ALERTS_TWILIO_FROM_NUMBER": "+447700900999",
            "MISSING_ALERTS_TWILIO_BASE_URL": twilio.base_url,
        }
    )
    return pipeline_env
