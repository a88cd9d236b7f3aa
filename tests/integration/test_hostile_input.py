"""Issue #10 on a real worker and broker: no input, however hostile, costs another child's
alert, stops a stream or answers 5xx; and the doors that were open are shut.

Each test names the finding it proves. Counts are taken where a person would see them: the
fake Twilio (the real twilio client posts to it) and the alerts / dead-letter topics."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from schemas.common import RiskFlag
from tests.integration.test_escalation import produce, wait_alerts
from tests.support import events as ev
from tests.support.api_keys import secret
from tests.support.fake_twilio import FakeTwilio
from tests.support.kafka import produce_raw, read_topic
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration
FLAGS = frozenset({RiskFlag.TRAFFICKING_SUSPECTED})


@pytest.fixture
def hostile_env(api_env: dict[str, str]) -> dict[str, str]:
    api_env.update(
        {
            "MISSING_ALERTS_WEB_HEADER_TIMEOUT_S": "2",
            "MISSING_ALERTS_API_ANONYMOUS_PER_MINUTE": "20",
        }
    )
    return api_env


@pytest.fixture
def running(hostile_env: dict[str, str], worker: WorkerProcess) -> Iterator[WorkerProcess]:
    worker.start()
    worker.wait_ready()
    yield worker


def topic(env: dict[str, str], name: str) -> str:
    return f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.{name}"


async def dead_letters(env: dict[str, str], want: int, within: float = 30) -> list[dict[str, Any]]:
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    deadline = time.monotonic() + within
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(letters) < want:
        letters = await read_topic(bootstrap, topic(env, "dead-letters"), until=want, within=2)
    return letters


def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """An HTTP/1.1 request with bytes as given (headers that are not UTF-8); its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


async def test_far_past_timestamps_cost_no_other_child_its_alert(
    running: WorkerProcess, hostile_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Finding 1: an absence last seen on 0001-01-01 was accepted and crashed dispatch's batch;
    17 of 20 other children's first alerts were lost. Now the API answers 422, the engine
    dead-letters it straight off Kafka, and dispatch dead-letters a far-past alert on its own
    topic; the 20 children are each alerted."""
    port = int(hostile_env["MISSING_ALERTS_WEB_PORT"])
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/v1/absences",
            headers={"Authorization": f"Bearer {secret('carer')}"},
            json={
                "child_ref": "FP0",
                "last_seen_at": "0001-01-01T00:00:00Z",
                "reporter": {"role": "carer"},
            },
        ) as resp,
    ):
        assert resp.status == 422
        assert (await resp.json())["detail"][0]["field"] == "last_seen_at"
    far_past = json.loads(ev.record(ev.absence("FP1"))[1])
    far_past["last_seen_at"] = "0001-01-01T00:00:00Z"
    children = [f"H{i:02d}" for i in range(20)]
    good = [ev.record(ev.absence(c, flags=FLAGS)) for c in children]
    await produce_raw(
        hostile_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        topic(hostile_env, "events"),
        [*good[:10], (b"FP1", json.dumps(far_past).encode()), *good[10:]],
    )
    alerts = await wait_alerts(hostile_env, lambda a: {x["child_ref"] for x in a} >= set(children))
    # A hostile alert straight onto the alerts topic, among real ones for the same worker.
    forged = dict(next(a for a in alerts if a["child_ref"] == "H00"))
    forged.update(
        {"alert_id": "FORGE2:x", "episode_code": "FORGE2", "last_seen_at": "0001-01-01T00:00:00Z"}
    )
    await produce_raw(
        hostile_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        topic(hostile_env, "alerts"),
        [(b"H00", json.dumps(forged).encode())],
    )
    # Out of hours the duty social worker and the emergency duty team may be one person; the
    # police liaison is someone else either way: at least two SMS per child.
    sent = await asyncio.to_thread(twilio.wait_for_requests_sync, 40, 60)
    bodies = [r.body or "" for r in sent]
    for child in children:
        assert sum(f" {child} " in b for b in bodies) >= 2, child
    letters = await dead_letters(hostile_env, 2)
    reasons = {(x["source_topic"].rsplit(".", 1)[1], x["reason"]) for x in letters}
    assert reasons == {("events", "invalid_event"), ("alerts", "invalid_dispatch_input")}
    assert running.proc is not None and running.proc.poll() is None


async def test_a_deeply_nested_record_is_dead_lettered_and_the_worker_stays_up(
    running: WorkerProcess, hostile_env: dict[str, str]
) -> None:
    """Finding 2: 60,000 '[' were dead-lettered, then re-parsed by a metrics helper: the
    engine hit RecursionError after the commit and took the worker down (exit 3)."""
    await produce_raw(
        hostile_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        topic(hostile_env, "events"),
        [(b"N1", b"[" * 60_000)],
    )
    (letter,) = await dead_letters(hostile_env, 1)
    assert letter["reason"] == "invalid_event" and letter["payload"] == ""
    await produce(hostile_env, ev.absence("N2", flags=FLAGS))
    alerts = await wait_alerts(hostile_env, lambda a: any(x["child_ref"] == "N2" for x in a))
    assert any(x["child_ref"] == "N2" for x in alerts)
    assert running.proc is not None and running.proc.poll() is None
    assert "engine process exited" not in running.logs()


async def test_hostile_http_input_is_4xx_never_5xx(
    running: WorkerProcess, hostile_env: dict[str, str]
) -> None:
    """Finding 2: the same nesting over HTTP, a non-UTF-8 bearer token and a non-UTF-8
    Idempotency-Key each answered 500."""
    port = int(hostile_env["MISSING_ALERTS_WEB_PORT"])
    auth = f"Authorization: Bearer {secret('carer')}\r\n".encode()
    post = b"POST /v1/absences HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    nested = b"[" * 60_000
    assert raw_request(port, post + auth, nested) == 422
    assert raw_request(port, post + b"Authorization: Bearer \xff\xfe\xc3(\r\n", b"{}") == 401
    assert raw_request(port, post + auth + b"Idempotency-Key: caf\xc3\xa9\xff\r\n", b"{}") == 422
    late = json.dumps(
        {
            "child_ref": "X1",
            "seen_at": "2099-01-01T00:00:00Z",
            "reporter": {"role": "carer"},
        }
    ).encode()
    check_in = post.replace(b"/v1/absences", b"/v1/check-ins")
    assert raw_request(port, check_in + auth, late) == 422


async def test_open_doors_are_shut(running: WorkerProcess, hostile_env: dict[str, str]) -> None:
    """Finding 6: /v1/deliveries answered without a key; the server bound 0.0.0.0 although
    WEB_HOST is 127.0.0.1; unauthenticated floods were never throttled; slow headers held a
    connection open."""
    port = int(hostile_env["MISSING_ALERTS_WEB_PORT"])
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for who, want in ((None, 401), ("carer", 403), ("duty", 404), ("duty-other", 404)):
            headers = {"Authorization": f"Bearer {secret(who)}"} if who else {}
            async with session.get(
                f"{base}/v1/deliveries/AAAA22:high-t0:pl-1:sms", headers=headers
            ) as r:
                assert r.status == want, who
        statuses = []
        for _ in range(25):
            async with session.get(
                f"{base}/v1/episodes/AAAA22", headers={"Authorization": "Bearer guess"}
            ) as r:
                statuses.append(r.status)
        # 20 failed authentications a minute per address: the keyless call above was one.
        assert statuses == [401] * 19 + [429] * 6
    # Exactly WEB_HOST: another loopback address of this machine is refused.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=3):
        pass
    # A client that never finishes its headers is disconnected after WEB_HEADER_TIMEOUT_S.
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server (a timeout would raise instead)
        assert time.monotonic() - started < 15


async def test_a_clean_stop_exits_0_without_an_error_line(
    hostile_env: dict[str, str], worker: WorkerProcess
) -> None:
    """Finding 9: a normal SIGTERM exited 3 with an ERROR line in 10 of 16 tries (the engine,
    in the same process group, could finish before the worker handled its own signal)."""
    for attempt in range(4):
        worker.start()
        worker.wait_ready()
        assert worker.stop() == 0, (attempt, worker.logs()[-3000:])
    errors = [line for line in worker.logs().splitlines() if '"level": "error"' in line]
    assert errors == []


async def test_deliveries_are_readable_only_by_their_authority(
    running: WorkerProcess, hostile_env: dict[str, str], twilio: FakeTwilio
) -> None:
    await produce(hostile_env, ev.profile("D1"), ev.absence("D1", flags=FLAGS))
    alerts = await wait_alerts(hostile_env, lambda a: any(x["child_ref"] == "D1" for x in a))
    code = next(a["episode_code"] for a in alerts if a["child_ref"] == "D1")
    await asyncio.to_thread(twilio.wait_for_requests_sync, 2, 30)
    nid = f"{code}:high-t0:pl-1:sms"
    base = f"http://127.0.0.1:{hostile_env['MISSING_ALERTS_WEB_PORT']}"
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while True:
            async with session.get(
                f"{base}/v1/deliveries/{nid}", headers={"Authorization": f"Bearer {secret('duty')}"}
            ) as r:
                if r.status == 200 or time.monotonic() > deadline:
                    body = await r.json()
                    break
            await asyncio.sleep(0.2)
        assert body["recipient_id"] == "pl-1" and "address" not in body and "body" not in body
        assert r.headers["Cache-Control"] == "no-store"
        async with session.get(
            f"{base}/v1/deliveries/{nid}",
            headers={"Authorization": f"Bearer {secret('duty-other')}"},
        ) as r:
            assert r.status == 403


async def read_changelog(env: dict[str, str], name: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of a Faust table's changelog, tombstones (None) included."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        f"{env['MISSING_ALERTS_APP_ID']}-{name}-changelog",
        bootstrap_servers=env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[tuple[bytes, bytes | None]] = []
    try:
        batch = await consumer.getmany(timeout_ms=2000)
        while batch:
            out += [(r.key, r.value) for records in batch.values() for r in records]
            batch = await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()
    return out


@pytest.fixture
def short_retention_env(hostile_env: dict[str, str]) -> dict[str, str]:
    hostile_env.update(
        {
            "MISSING_ALERTS_DELIVERY_RETENTION_DAYS": str(6 / 86400),  # six seconds
            "MISSING_ALERTS_RETENTION_SWEEP_INTERVAL_S": "1",
        }
    )
    return hostile_env


async def test_delivery_records_expire_after_the_episode_closes(
    short_retention_env: dict[str, str], worker: WorkerProcess, twilio: FakeTwilio
) -> None:
    """Finding 7: alerts and delivery records carried the date of birth, and nothing ever
    expired from the notification log, so every phone number and message body was kept
    forever. Now: no date of birth anywhere downstream of the profile, and a retention period
    after the episode closes both logs are tombstoned on their changelogs."""
    env = short_retention_env
    worker.start()
    worker.wait_ready()
    await produce(env, ev.profile("RT1"), ev.absence("RT1", flags=FLAGS))
    alerts = await wait_alerts(env, lambda a: any(x["child_ref"] == "RT1" for x in a))
    code = next(a["episode_code"] for a in alerts if a["child_ref"] == "RT1")
    await asyncio.to_thread(twilio.wait_for_requests_sync, 2, 30)
    await produce(env, ev.returned("RT1", code))
    deadline = time.monotonic() + 60
    while True:
        deliveries = await read_changelog(env, "deliveries")
        notified = await read_changelog(env, "episode-notified")
        gone = {k for k, v in deliveries if v is None}
        kept = {k for k, v in deliveries if v is not None}
        if kept and kept <= gone and any(v is None for _, v in notified):
            break
        assert time.monotonic() < deadline, (len(kept), len(gone), notified)
        await asyncio.sleep(1)
    # The returned notices were sent too, and went the same way.
    assert any(b":returned:" in k for k in gone)
    everything = b"".join(v or b"" for _, v in deliveries) + json.dumps(alerts).encode()
    assert b"date_of_birth" not in everything and b"2010-06-01" not in everything
