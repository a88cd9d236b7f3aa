"""The engine as a child process of the worker, on a real broker.

- Two workers share the partitions; every episode reads the same from either worker's API, so
  the one not holding the child's state forwards to the one that does (the group's owner map
  and the signed internal port).
- SIGKILL of the engine process alone takes the worker down (non-zero exit) rather than leaving
  an API up with nothing escalating; a restarted worker carries on with nothing lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from functools import partial
from pathlib import Path

import aiohttp
import pytest

from schemas.common import RiskFlag
from tests.integration.test_api import signed_sms
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.api_keys import secret
from tests.support.fake_twilio import FakeTwilio
from tests.support.wait import poll
from tests.support.worker import WorkerProcess, free_port

pytestmark = pytest.mark.integration
CHILDREN = [f"R{i:02d}" for i in range(8)]


def engine_pid(worker: WorkerProcess) -> int:
    assert worker.proc is not None
    pid = worker.proc.pid
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"streams.engine.process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("no engine process under the worker")


def wait_engine(worker: WorkerProcess, starts: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.logs().count("engine partitions assigned") < starts:
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.2)


@pytest.fixture
def second_env(api_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    port = free_port()
    return {
        **api_env,
        "MISSING_ALERTS_WEB_PORT": str(port),
        "MISSING_ALERTS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MISSING_ALERTS_DATA_DIR": str(tmp_path / "var-b"),
    }


async def get_episode(session: aiohttp.ClientSession, base: str, code: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {secret('duty')}"}
    async with session.get(f"{base}/v1/episodes/{code}", headers=headers) as resp:
        return resp.status, await resp.text()


async def _told_on_both(
    session: aiohttp.ClientSession, bases: list[str], code: str
) -> tuple[object, object]:
    answers = [json.loads((await get_episode(session, base, code))[1]) for base in bases]
    return answers[0]["notifications"], answers[1]["notifications"]


async def _reply_ack(
    session: aiohttp.ClientSession, twilio: FakeTwilio, base: str, code: str
) -> str:
    url = base + "/v1/webhooks/twilio/inbound"
    params, signature = signed_sms(twilio, url, "+447700900105", f"ACK {code}")
    async with session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as res:
        return await res.text()


async def test_any_worker_serves_any_episode(
    worker: WorkerProcess,
    api_env: dict[str, str],
    second_env: dict[str, str],
    twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    other = WorkerProcess(env=second_env, log_path=tmp_path / "worker-b.log")
    try:
        worker.start()
        other.start()
        worker.wait_ready()
        other.wait_ready()
        await produce(
            api_env,
            *[ev.profile(c) for c in CHILDREN],
            *[ev.absence(c, flags=frozenset({RiskFlag.CSE})) for c in CHILDREN],
        )
        alerts = await wait_alerts(api_env, lambda a: {x["child_ref"] for x in a} >= set(CHILDREN))
        codes = {a["child_ref"]: a["episode_code"] for a in alerts}
        # Both engines hold partitions (four partitions, two members): each worker serves some
        # episodes itself and forwards the rest.
        owners = [
            [
                json.loads(line[line.index("{") :])["partitions"]
                for line in w.logs().splitlines()
                if "engine partitions assigned" in line
            ][-1]
            for w in (worker, other)
        ]
        assert all(owners) and sorted(owners[0] + owners[1]) == [0, 1], owners
        bases = [
            api_env["MISSING_ALERTS_PUBLIC_BASE_URL"],
            second_env["MISSING_ALERTS_PUBLIC_BASE_URL"],
        ]
        async with aiohttp.ClientSession() as session:
            for child, code in codes.items():
                views = []
                for base in bases:
                    for _ in range(50):  # the code reaches each worker's directory by changelog
                        status, body = await get_episode(session, base, code)
                        if status == 200:
                            break
                        await asyncio.sleep(0.1)
                    assert status == 200, (base, child, body)
                    views.append(json.loads(body))
                # The engine's part is the one owner's answer; who was told comes from each
                # worker's own copy of the episode-notifications table, which dispatch keeps
                # writing meanwhile: those agree once the copies have caught up.
                for v in views:
                    del v["notifications"], v["people"]
                assert views[0] == views[1]
                assert views[0]["child_ref"] == child and views[0]["status"] == "open"
                await poll(
                    partial(_told_on_both, session, bases, code),
                    lambda pair: pair[0] == pair[1] and len(pair[0]) >= 4,
                    f"both workers showing the four first-step messages of {code}",
                    within=20,
                )
            # A reply to the SMS reaches whichever worker the load balancer picks: each must
            # know who was messaged, whichever worker's dispatch sent it.
            for i, code in enumerate(sorted(codes.values())):
                await poll(
                    partial(_reply_ack, session, twilio, bases[i % 2], code),
                    lambda text: "Acknowledged episode" in text,
                    f"the police liaison's ACK {code} accepted by {bases[i % 2]}",
                    within=20,
                )
    finally:
        other.stop()


async def test_engine_killed_takes_the_worker_down_and_a_restart_carries_on(
    worker: WorkerProcess, pipeline_env: dict[str, str]
) -> None:
    env = pipeline_env
    worker.start()
    worker.wait_ready()
    wait_engine(worker, 1)
    await produce(env, *[ev.absence(c) for c in CHILDREN[:3]])
    await wait_alerts(env, lambda a: {x["child_ref"] for x in a} >= set(CHILDREN[:3]))

    os.kill(engine_pid(worker), signal.SIGKILL)
    assert worker.proc is not None
    code = await asyncio.to_thread(worker.proc.wait, 60)
    assert code != 0, "the worker must not keep running without its engine"
    assert "engine process exited" in worker.logs()

    worker.start()
    worker.wait_ready()
    await produce(env, *[ev.absence(c) for c in CHILDREN[3:5]])
    alerts = await wait_alerts(
        env,
        lambda a: {x["child_ref"] for x in a if x["step_id"] == "high-t0"} >= set(CHILDREN[:5]),
    )
    t0 = [a["alert_id"] for a in alerts if a["step_id"] == "high-t0"]
    assert len(t0) == len(set(t0)) == 5, "each T+0 alert decided exactly once"
