"""Dispatch on a real broker with real delivery paths: the real twilio client against a local
HTTP fake of Twilio, aiosmtplib against a real SMTP server on loopback, and a real worker process.
Counts are taken at the fakes: what a person's phone or inbox would have received."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.fanout import Links, fan_out
from config import load_policy
from config.settings import Settings
from schemas.alerts import Alert, Channel
from schemas.common import RiskFlag
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.fake_twilio import FakeTwilio, Reply
from tests.support.kafka import keys_to_end
from tests.support.scrape import retried, scrape_until
from tests.support.settle import dispatch_settled
from tests.support.smtp_server import SmtpTestServer
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration
FLAGS = frozenset({RiskFlag.TRAFFICKING_SUSPECTED})
SECRET_NAME, SECRET_ADDRESS = "Jane Example-Private", "1 Hidden Lane"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer()
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()


@pytest.fixture
def delivery_env(
    pipeline_env: dict[str, str], twilio: FakeTwilio, smtp: SmtpTestServer
) -> dict[str, str]:
    pipeline_env.update(
        {
            "MISSING_ALERTS_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "MISSING_ALERTS_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "MISSING_ALERTS_TWILIO_FROM_NUMBER": "+447700900999",
            "MISSING_ALERTS_TWILIO_BASE_URL": twilio.base_url,
            "MISSING_ALERTS_SMTP_HOST": "127.0.0.1",
            "MISSING_ALERTS_SMTP_PORT": str(smtp.port),
            "MISSING_ALERTS_SMTP_STARTTLS": "false",
            "MISSING_ALERTS_DISPATCH_RETRY_INITIAL_S": "0.3",
            "MISSING_ALERTS_DISPATCH_RETRY_CAP_S": "1",
            "MISSING_ALERTS_DISPATCH_RETRY_DEADLINE_S": "60",
            "MISSING_ALERTS_SMS_TIMEOUT_S": "30",
        }
    )
    return pipeline_env


def sms_only_t0(env: dict[str, str], tmp_path: Path) -> None:
    """Policy where the first high step is SMS-only, so an email fallback is observable."""
    import shutil

    from config.settings import POLICY_DIR

    dest = tmp_path / "policy-sms"
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = dest / "escalation.yaml"
    text = path.read_text()
    old = (
        "id: high-t0\n        after: 0m\n        roles: [duty_social_worker, police_liaison]\n"
        "        channels: [sms, email]"
    )
    assert old in text
    path.write_text(text.replace(old, old.replace("[sms, email]", "[sms]")))
    env["MISSING_ALERTS_POLICY_DIR"] = str(dest)


def expected(alert: dict[str, Any], env: dict[str, str]) -> list[Any]:
    """What dispatch must send for ``alert``: the pure fan-out with the worker's settings."""
    policy = load_policy(Path(env.get("MISSING_ALERTS_POLICY_DIR", "config")))
    return fan_out(
        Alert.model_validate(alert),
        policy,
        Links(env["MISSING_ALERTS_PUBLIC_BASE_URL"], Settings().link_key),
    )


def expected_first_step(
    alerts: list[dict[str, Any]], env: dict[str, str], channel: Channel
) -> list[Any]:
    """Every message of the alerts' first step (high-t0) on ``channel``."""
    return [
        n
        for a in alerts
        if a["step_id"] == "high-t0"
        for n in expected(a, env)
        if n.channel is channel
    ]


async def first_alert(env: dict[str, str], child: str) -> dict[str, Any]:
    alerts = await wait_alerts(env, lambda a: any(x["child_ref"] == child for x in a))
    return next(a for a in alerts if a["child_ref"] == child)


def base_url(env: dict[str, str]) -> str:
    return env["MISSING_ALERTS_PUBLIC_BASE_URL"]


# The development duty-team key (config/api_keys.dev.yaml, docs/api.md): these workers run
# without a keys file of their own.
DEV_DUTY_KEY = "dev-responder-LA-EXAMPLE"


def http_get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {DEV_DUTY_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


def wait_until(predicate: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)


def accepted_sms(twilio: FakeTwilio) -> Counter[tuple[str | None, str | None]]:
    return Counter((r.to, r.body) for r in twilio.requests if r.message_sid)


async def test_high_risk_absence_reaches_each_person_on_duty_once(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio, smtp: SmtpTestServer
) -> None:
    env = delivery_env
    worker.start()
    worker.wait_ready()
    await produce(
        env,
        ev.profile("D100", full_name=SECRET_NAME),
        ev.absence("D100", flags=FLAGS),
    )
    alert = await first_alert(env, "D100")
    want = expected(alert, env)
    want_sms = {n.address for n in want if n.channel is Channel.SMS}
    want_mail = {n.address for n in want if n.channel is Channel.EMAIL}
    assert "+447700900105" in want_sms  # the force's police liaison is always among them

    await asyncio.to_thread(wait_until, lambda: len(twilio.requests) >= len(want_sms))
    await asyncio.to_thread(smtp.wait_for_messages_sync, len(want_mail), 30)
    await dispatch_settled(env)  # every alert dispatched and recorded: nothing more will come

    sms = [r for r in twilio.requests if r.message_sid]
    assert sorted(r.to for r in sms) == sorted(want_sms)  # one each, nobody twice
    for r in sms:
        body = r.body or ""
        assert f"ACK {alert['episode_code']}" in body and "D100 (JD)" in body and "HIGH" in body
        assert SECRET_NAME not in body and SECRET_ADDRESS not in body
        assert r.status_callback and "/v1/webhooks/twilio/status?n=" in r.status_callback
    mails = smtp.messages
    assert sorted(a for m in mails for a in m.rcpt_tos) == sorted(want_mail)
    assert all(alert["episode_code"] in m.subject for m in mails)


async def test_twilio_outage_then_recovery_delivers_each_sms_exactly_once(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio
) -> None:
    env = delivery_env
    twilio.queue(Reply.server_error(), times=6)  # the first six attempts fail with 500
    worker.start()
    worker.wait_ready()
    children = [f"O{i}" for i in range(3)]
    await produce(
        env, *[ev.profile(c) for c in children], *[ev.absence(c, flags=FLAGS) for c in children]
    )
    alerts = await wait_alerts(env, lambda a: {x["child_ref"] for x in a} >= set(children))
    want = Counter((n.address, n.body) for n in expected_first_step(alerts, env, Channel.SMS))
    await asyncio.to_thread(
        wait_until, lambda: sum(accepted_sms(twilio).values()) >= sum(want.values()), 60
    )
    await dispatch_settled(env)
    assert accepted_sms(twilio) == want  # every SMS once, after recovery
    assert len(twilio.requests) > sum(want.values())  # and the failures really happened


async def test_a_hung_sms_holds_only_its_own_message(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Finding 8 of issue #10: dispatch awaited a whole batch, so one hung provider request
    stopped every SMS and email of the worker for the whole timeout (30 s here)."""
    env = delivery_env
    liaison = "+447700900105"
    twilio.answer_number(liaison, Reply.hang())
    worker.start()
    worker.wait_ready()
    children = [f"HG{i}" for i in range(3)]
    await produce(
        env, *[ev.profile(c) for c in children], *[ev.absence(c, flags=FLAGS) for c in children]
    )
    alerts = await wait_alerts(env, lambda a: {x["child_ref"] for x in a} >= set(children))
    want = {(n.address, n.body) for n in expected_first_step(alerts, env, Channel.SMS)}
    others = {w for w in want if w[0] != liaison}
    assert others and len(want - others) == 3
    # Everyone else's SMS arrives while the liaison's three requests hang.
    await asyncio.to_thread(
        wait_until, lambda: others <= set(accepted_sms(twilio)) and twilio.hanging == 3, 15
    )
    twilio.release()
    await asyncio.to_thread(wait_until, lambda: set(accepted_sms(twilio)) >= want, 30)
    assert all(n == 1 for n in accepted_sms(twilio).values())


async def test_permanent_sms_failure_falls_back_to_email_and_alerts_team_manager(
    worker: WorkerProcess,
    delivery_env: dict[str, str],
    twilio: FakeTwilio,
    smtp: SmtpTestServer,
    tmp_path: Path,
) -> None:
    env = delivery_env
    sms_only_t0(env, tmp_path)
    twilio.answer_number("+447700900105", Reply.error(400, 21211, "invalid 'To'"))
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("D200"), ev.absence("D200", flags=FLAGS))
    alert = await first_alert(env, "D200")

    def fallback_and_escalation_arrived() -> bool:
        rcpts = [a for m in smtp.messages for a in m.rcpt_tos]
        return "mispers.liaison@example.org" in rcpts and "team.manager@example.org" in rcpts

    await asyncio.to_thread(wait_until, fallback_and_escalation_arrived, 40)
    await dispatch_settled(env)
    by_rcpt = Counter(a for m in smtp.messages for a in m.rcpt_tos)
    assert by_rcpt["mispers.liaison@example.org"] == 1  # the step's message, by email instead
    assert by_rcpt["team.manager@example.org"] == 1
    manager_mail = next(m for m in smtp.messages if "team.manager@example.org" in m.rcpt_tos)
    assert (
        manager_mail.subject.startswith("Delivery failed")
        and alert["episode_code"] in manager_mail.subject
    )
    assert any(
        r.to == "+447700900103" and "DELIVERY FAILED" in (r.body or "") for r in twilio.requests
    )
    failed = [r for r in twilio.requests if r.to == "+447700900105"]
    assert len(failed) == 1  # permanent: not retried

    nid = f"{alert['episode_code']}:high-t0:pl-1:sms"
    status = json.loads(await asyncio.to_thread(http_get, f"{base_url(env)}/v1/deliveries/{nid}"))
    assert status["status"] == "failed" and status["fallback_sent"] is True
    assert status["last_error"] == "twilio 21211"


async def test_smtp_outage_delays_email_but_loses_none(
    worker: WorkerProcess, delivery_env: dict[str, str], smtp: SmtpTestServer
) -> None:
    env = delivery_env
    smtp.stop()
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("D300"), ev.absence("D300", flags=FLAGS))
    alert = await first_alert(env, "D300")
    want_mail = sorted(n.address for n in expected(alert, env) if n.channel is Channel.EMAIL)
    # Several failed attempts while the server is down, counted by the worker itself.
    await scrape_until(env, lambda s: retried(s, "email") >= 2 * len(want_mail))
    assert smtp.messages == ()
    smtp.start()
    await asyncio.to_thread(smtp.wait_for_messages_sync, len(want_mail), 30)
    await dispatch_settled(env)
    assert sorted(a for m in smtp.messages for a in m.rcpt_tos) == want_mail


async def test_status_callbacks_signed_update_the_record_and_forged_are_refused(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio
) -> None:
    env = delivery_env
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("D400"), ev.absence("D400", flags=FLAGS))
    alert = await first_alert(env, "D400")
    await asyncio.to_thread(wait_until, lambda: any(r.message_sid for r in twilio.requests))
    record = next(r for r in twilio.requests if r.message_sid)
    query = record.status_callback.split("?", 1)[1] if record.status_callback else ""
    nid = dict(p.split("=", 1) for p in query.split("&"))["n"]
    base = env["MISSING_ALERTS_PUBLIC_BASE_URL"]

    forged = await twilio.post_status(record, "delivered", tamper={"MessageStatus": "failed"})
    assert forged.response_status == 403
    unsigned_req = urllib.request.Request(
        record.status_callback or "", data=b"MessageStatus=delivered", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, unsigned_req)
    assert refused.value.code == 403

    sent = await twilio.post_status(record, "sent")
    delivered = await twilio.post_status(record, "delivered")
    late_sent = await twilio.post_status(record, "sent")  # out of order: must not go back
    assert [sent.response_status, delivered.response_status, late_sent.response_status] == [204] * 3

    def status() -> str:
        return str(json.loads(http_get(f"{base}/v1/deliveries/{nid}"))["status"])

    await asyncio.to_thread(wait_until, lambda: status() == "delivered", 20)
    await dispatch_settled(env)  # the late "sent" was applied too, and changed nothing
    assert await asyncio.to_thread(status) == "delivered"
    assert alert["episode_code"] in nid


async def test_sigkill_mid_dispatch_loses_nothing_and_duplicates_only_in_flight_requests(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio, smtp: SmtpTestServer
) -> None:
    """Twilio has no idempotency key: a request that reached it but whose delivery record was
    not yet durable can be sent again after a crash. That is the whole window (the requests in
    flight, and any answered in the instant before their record's flush); this measures it. The
    worker is killed before its first offset commit, so the restart must also re-fetch what
    Faust dropped during its rebalance (streams/worker/rewind.py): every email must go too."""
    env = delivery_env
    worker.start()
    worker.wait_ready()
    children = [f"S{i:02d}" for i in range(12)]
    twilio.queue(Reply.ok(), times=5)
    twilio.respond_with(Reply.hang())  # after five answers, requests hang (in flight)
    await produce(
        env, *[ev.profile(c) for c in children], *[ev.absence(c, flags=FLAGS) for c in children]
    )
    await asyncio.to_thread(wait_until, lambda: twilio.hanging >= 1, 30)
    answered_before_kill = accepted_sms(twilio)  # the queue is spent: nothing more is answered
    worker.kill()
    recorded = await keys_to_end(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{env['MISSING_ALERTS_APP_ID']}-deliveries-changelog",
    )
    answered_unrecorded = {
        (r.to, r.body)
        for r in twilio.requests
        if r.message_sid and r.notification_id not in recorded
    }
    twilio.respond_with(Reply.ok())
    twilio.release()  # the hung requests complete at "Twilio": those phones get the SMS
    await asyncio.to_thread(wait_until, lambda: twilio.hanging == 0, 10)
    # In flight at the crash: whatever the dead worker asked for and heard no answer to,
    # including a request still on its way to the fake when the process died.
    in_flight = {(r.to, r.body) for r in twilio.requests} - set(answered_before_kill)

    worker.start()
    worker.wait_ready(timeout=120)
    alerts = await wait_alerts(env, lambda a: {x["child_ref"] for x in a} >= set(children))
    want = Counter((n.address, n.body) for n in expected_first_step(alerts, env, Channel.SMS))
    want_mail = {(n.address, n.subject) for n in expected_first_step(alerts, env, Channel.EMAIL)}

    def got_mail() -> set[tuple[str, str]]:
        return {(rcpt, m.subject) for m in smtp.messages for rcpt in m.rcpt_tos}

    await asyncio.to_thread(wait_until, lambda: set(accepted_sms(twilio)) >= set(want), 90)
    await asyncio.to_thread(wait_until, lambda: got_mail() >= want_mail, 90)
    await dispatch_settled(env)
    got = accepted_sms(twilio)
    assert set(got) == set(want), "an SMS was lost"
    assert got_mail() == want_mail, "an email was lost"
    assert len(want_mail) == 2 * len(children)
    duplicated = {k for k, n in got.items() if n > 1}
    window = in_flight | answered_unrecorded
    assert duplicated <= window, "only a request whose record was not durable may be repeated"
    answered_recorded = set(answered_before_kill) - answered_unrecorded
    assert not (duplicated & answered_recorded), "an answered, recorded SMS was sent again"
    print(
        f"in flight at SIGKILL: {len(in_flight)}, answered and unrecorded: "
        f"{len(answered_unrecorded)}, duplicated: {len(duplicated)} of {len(want)}"
    )


async def _one_alert_per_transaction(env: dict[str, str], alerts: list[dict[str, Any]]) -> None:
    """As the engine writes them at its busiest: every alert its own transaction, so a commit
    marker follows each one on ``alerts``."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        transactional_id=f"{env['MISSING_ALERTS_APP_ID']}-test-writer",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        for alert in alerts:
            async with producer.transaction():
                await producer.send(
                    f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.alerts",
                    json.dumps(alert).encode(),
                    key=alert["child_ref"].encode(),
                )
    finally:
        await producer.stop()


async def test_dispatch_commits_past_transaction_markers_as_it_goes(
    worker: WorkerProcess, delivery_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Faust's own commit rule moved past one transaction per commit (about 3 s), so with an
    alert per transaction the group fell further behind what it had sent, and a restart
    replayed all of it (streams/worker/commit_offsets.py). Once everything is sent, the
    committed offsets must reach the end within a few commit intervals, not one per alert."""
    env = delivery_env
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("M00"), ev.absence("M00", flags=FLAGS))
    template = await first_alert(env, "M00")
    clones = [
        {
            **template,
            "child_ref": f"M{i:02d}",
            "alert_id": f"{template['alert_id']}-m{i:02d}",
            # Never the template's own code (code[:-2] + i gave it for one i when the code
            # ended in two digits: dispatch then rightly dropped that clone as already sent).
            "episode_code": f"{template['episode_code']}M{i:02d}",
        }
        for i in range(1, 61)
    ]
    await _one_alert_per_transaction(env, clones)
    want = Counter(
        (n.address, n.body) for n in expected_first_step([template, *clones], env, Channel.SMS)
    )
    await asyncio.to_thread(
        wait_until, lambda: sum(accepted_sms(twilio).values()) >= sum(want.values()), 90
    )
    assert accepted_sms(twilio) == want  # every alert sent once
    # 61 transactions over 2 partitions: the old rule needed about 30 commits per partition.
    await dispatch_settled(env, within=20)
