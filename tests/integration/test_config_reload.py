"""Rota and API keys change while the worker runs (issue 14, part 4): on SIGHUP the worker
loads the new files, checks them as at start-up, and uses them; a bad file is refused, counted,
and the old one stays. A real worker on the broker, SMS at the fake Twilio, the clock moved."""

from __future__ import annotations

import json
import os
import shutil
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config.settings import POLICY_DIR
from schemas.common import RiskFlag
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.api_keys import secret
from tests.support.clock import TestClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.scrape import get, scrape_until
from tests.support.settle import engine_settled
from tests.support.wait import until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration
OLD_TM, NEW_TM = "+447700900103", "+447700900177"  # the team manager, tm-1 in rota.yaml
RELOADS = "missing_alerts_config_reloads_total"


@pytest.fixture
def reload_env(api_env: dict[str, str], clock: TestClock, tmp_path: Path) -> dict[str, str]:
    dest = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    api_env["MISSING_ALERTS_POLICY_DIR"] = str(dest)
    # Only SIGHUP reloads in this test, so each change is applied exactly when the test says.
    api_env["MISSING_ALERTS_CONFIG_RELOAD_INTERVAL_S"] = "3600"
    return api_env


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    tmp = path.with_suffix(".new")
    tmp.write_text(text.replace(old, new))
    os.replace(tmp, path)  # as an editor or a deploy tool does: a new file, a new inode


def read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def replace_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def sms_to(twilio: FakeTwilio, number: str, step_text: str) -> int:
    return sum(1 for r in twilio.requests if r.to == number and step_text in (r.body or ""))


async def reloaded(
    env: dict[str, str], worker: WorkerProcess, kind: str, outcome: str, n: int
) -> None:
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGHUP)
    await scrape_until(env, lambda s: get(s, RELOADS, kind=kind, outcome=outcome) >= n)


async def test_a_new_rota_reaches_the_next_step_and_a_bad_one_is_refused(
    reload_env: dict[str, str], worker: WorkerProcess, clock: TestClock, twilio: FakeTwilio
) -> None:
    env, rota = reload_env, Path(reload_env["MISSING_ALERTS_POLICY_DIR"]) / "rota.yaml"
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("RL1"))
    await engine_settled(env)
    await produce(env, ev.absence("RL1", flags=frozenset({RiskFlag.CSE})))
    await wait_alerts(env, lambda a: any(x["step_id"] == "high-t0" for x in a))

    # The team manager's number changes tonight; the T+30m step is still to come.
    rewrite(rota, f'"{OLD_TM}"', f'"{NEW_TM}"')
    await reloaded(env, worker, "rota", "applied", 1)
    assert "config reloaded" in worker.logs() and NEW_TM not in worker.logs()
    clock.advance(timedelta(minutes=31))
    await until(lambda: sms_to(twilio, NEW_TM, "") >= 1, "T+30m SMS to the new number")
    assert sms_to(twilio, OLD_TM, "") == 0

    # A broken rota (a person with no way to reach them) is refused; the one in use stays.
    rewrite(rota, f'"{NEW_TM}", email: "team.manager@example.org"', "")
    await reloaded(env, worker, "rota", "refused", 1)
    assert "config refused" in worker.logs()
    health = env["MISSING_ALERTS_PUBLIC_BASE_URL"] + "/healthz"
    async with aiohttp.ClientSession() as session, session.get(health) as resp:
        assert resp.status == 200
    clock.advance(timedelta(hours=2))  # T+2h: the service manager, from the rota in use
    await until(lambda: sms_to(twilio, "+447700900104", "") >= 1, "T+2h SMS")
    assert worker.proc is not None and worker.proc.poll() is None


async def test_a_revoked_key_is_refused_without_a_restart(
    reload_env: dict[str, str], worker: WorkerProcess
) -> None:
    env = reload_env
    keys_path = Path(env["MISSING_ALERTS_API_KEYS_FILE"])
    worker.start()
    worker.wait_ready()
    url = env["MISSING_ALERTS_PUBLIC_BASE_URL"] + "/v1/absences"
    body = json.dumps(
        {"child_ref": "RK1", "last_seen_at": "2026-11-28T10:00:00Z", "reporter": {"role": "carer"}}
    )

    async def post(who: str) -> int:
        headers = {"Authorization": f"Bearer {secret(who)}", "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as resp,
        ):
            return resp.status

    assert await post("carer") == 202
    keys = read_json(keys_path)
    keys["keys"] = [k for k in keys["keys"] if k["id"] != "carer-la-example"]
    replace_json(keys_path, keys)
    await reloaded(env, worker, "api_keys", "applied", 1)
    assert await post("carer") == 401
    assert await post("carer-other") in (202, 403)  # another key still authenticates

    # A keys file naming a responder the rota does not know is refused: the old keys stay.
    keys["keys"][0]["responder_id"] = "nobody-in-the-rota"
    replace_json(keys_path, keys)
    await reloaded(env, worker, "api_keys", "refused", 1)
    assert "nobody-in-the-rota" in worker.logs() and await post("carer") == 401
