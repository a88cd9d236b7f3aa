"""The HTTP API on a real worker and a real broker: writes land on Kafka, bad input gets the
right status naming the field, idempotency, scopes, and the three ways to acknowledge."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from alerts.ack_links import sign_link, sign_rhi_link
from config.settings import Settings
from tests.integration.test_escalation import wait_alerts
from tests.support.api_keys import secret
from tests.support.fake_twilio import FakeTwilio
from tests.support.kafka import read_topic
from tests.support.settle import dispatch_settled, engine_settled
from tests.support.wait import poll
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, env: dict[str, str], session: aiohttp.ClientSession) -> None:
        self.base = env["MISSING_ALERTS_PUBLIC_BASE_URL"]
        self.session = session

    async def call(
        self, method: str, path: str, who: str | None = "carer", body: Any = None, **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        headers = dict(kw.pop("headers", {}))
        if who:
            headers["Authorization"] = f"Bearer {secret(who)}"
        if body is not None and "data" not in kw:
            kw["data"] = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            text = await resp.text()
            try:
                payload: Any = json.loads(text)
            except ValueError:
                payload = text
            return resp.status, payload, dict(resp.headers)


@pytest.fixture
async def client(api_env: dict[str, str], worker: WorkerProcess) -> Any:
    worker.start()
    worker.wait_ready()
    async with aiohttp.ClientSession() as session:
        yield Client(api_env, session)


def events_topic(env: dict[str, str]) -> tuple[str, str]:
    return env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.events"


ABSENCE = {
    "child_ref": "A1",
    "last_seen_at": "2026-11-28T10:00:00Z",
    "reporter": {"role": "carer"},
    "reported_flags": ["county_lines"],
}
PROFILE = {
    "initials": "RT",
    "date_of_birth": "2011-04-05",
    "local_authority": "LA-EXAMPLE",
    "police_force": "FORCE-EXAMPLE",
    "full_name": "Private Name",
}


async def open_episode(client: Client, env: dict[str, str], child: str) -> str:
    status, _, _ = await client.call("PUT", f"/v1/children/{child}/profile", "case", PROFILE)
    assert status == 202
    await engine_settled(env)  # the engine has applied the profile before the absence
    status, body, _ = await client.call(
        "POST", "/v1/absences", "carer", {**ABSENCE, "child_ref": child}
    )
    assert status == 202, body
    alerts = await wait_alerts(env, lambda a: any(x["child_ref"] == child for x in a))
    code = str(next(a["episode_code"] for a in alerts if a["child_ref"] == child))
    # The code reaches every worker's directory through a changelog, a moment after the alert.
    for _ in range(50):
        status, _, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
        if status == 200:
            break
        await asyncio.sleep(0.1)
    return code


async def report_return(client: Client, child: str, returned_at: str) -> None:
    """The carer reports ``child`` back (no episode code: the engine finds the episode)."""
    body = {"child_ref": child, "returned_at": returned_at, "reporter": {"role": "carer"}}
    status, answer, _ = await client.call("POST", "/v1/returns", "carer", body)
    assert status == 202, answer


async def test_each_write_lands_its_event_on_kafka(client: Client, api_env: dict[str, str]) -> None:
    code = await open_episode(client, api_env, "A1")
    calls = [
        (
            "POST",
            "/v1/check-ins",
            "carer",
            {"child_ref": "A1", "seen_at": "2026-11-28T09:00:00Z", "reporter": {"role": "carer"}},
        ),
        (
            "POST",
            f"/v1/episodes/{code}/updates",
            "carer",
            {"kind": "category", "category": "away", "reporter": {"role": "carer"}},
        ),
        (
            "POST",
            f"/v1/episodes/{code.lower()}/acknowledgements",
            "duty",
            {"recipient_id": "dsw-day"},
        ),
        (
            "POST",
            "/v1/returns",
            "carer",
            {
                "child_ref": "A1",
                "returned_at": "2026-11-28T12:00:00Z",
                "reporter": {"role": "carer"},
            },
        ),
        ("POST", f"/v1/episodes/{code}/return-interview", "carer", {"offered_on": "2026-11-29"}),
    ]
    ids = []
    for method, path, who, body in calls:
        status, payload, _ = await client.call(method, path, who, body)
        assert status == 202, (path, payload)
        ids.append(payload["event_id"])
    bootstrap, topic = events_topic(api_env)
    records = await read_topic(bootstrap, topic, until=7, within=20)
    by_id = {r["event_id"]: r for r in records}
    assert [by_id[i]["type"] for i in ids] == [
        "check_in",
        "update",
        "acknowledgement",
        "return",
        "return_interview",
    ]
    assert by_id[ids[1]]["episode_code"] == code and by_id[ids[1]]["child_ref"] == "A1"
    assert by_id[ids[2]]["via"] == "api"
    profiles = await read_topic(
        bootstrap, f"{api_env['MISSING_ALERTS_TOPIC_PREFIX']}.profiles", until=1, within=10
    )
    assert profiles[0]["child_ref"] == "A1" and profiles[0]["type"] == "profile"

    await engine_settled(api_env)  # every write above applied
    status, state, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
    assert status == 200, state
    assert state["status"] == "closed" and state["category"] == "away" and state["tier"] == "high"
    assert "dsw-day" in state["acknowledged_by"] and state["return_interview"]["offered_on"]
    assert "Private Name" not in json.dumps(state)


async def test_bad_input_statuses_name_the_field(client: Client) -> None:
    status, body, _ = await client.call("POST", "/v1/absences", "carer", {"child_ref": "A2"})
    assert status == 422 and {e["field"] for e in body["detail"]} >= {"last_seen_at", "reporter"}
    status, body, _ = await client.call(
        "POST", "/v1/absences", "carer", {**ABSENCE, "last_seen_at": "yesterday"}
    )
    assert status == 422 and body["detail"][0]["field"] == "last_seen_at"
    status, body, _ = await client.call(
        "POST",
        "/v1/absences",
        "carer",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert status == 422 and body["detail"][0]["field"] == "(body)"
    status, _, _ = await client.call(
        "POST",
        "/v1/absences",
        "carer",
        data=b"x=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    big = {**ABSENCE, "circumstances": "x" * 70_000}
    status, _, _ = await client.call("POST", "/v1/absences", "carer", big)
    assert status == 413
    status, _, headers = await client.call("POST", "/v1/absences", None, ABSENCE)
    assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
    status, _, _ = await client.call("POST", "/v1/absences", "duty", ABSENCE)
    assert status == 403  # a read/ack key cannot write events
    status, _, _ = await client.call(
        "POST",
        "/v1/episodes/ZZZZ99/updates",
        "carer",
        {"kind": "sighting", "reporter": {"role": "carer"}},
    )
    assert status == 404


async def test_idempotency_key_replays_and_conflicts(
    client: Client, api_env: dict[str, str]
) -> None:
    body = {**ABSENCE, "child_ref": "I1"}
    first = await client.call(
        "POST", "/v1/absences", "carer", body, headers={"Idempotency-Key": "k-1"}
    )
    again = await client.call(
        "POST", "/v1/absences", "carer", body, headers={"Idempotency-Key": "k-1"}
    )
    assert first[0] == again[0] == 202 and first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    other = await client.call(
        "POST",
        "/v1/absences",
        "carer",
        {**body, "category": "away"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other[0] == 409
    bootstrap, topic = events_topic(api_env)
    records = await read_topic(bootstrap, topic, until=5, within=5)
    assert [r["child_ref"] for r in records].count("I1") == 1


async def test_keys_are_limited_to_their_local_authority(
    client: Client, api_env: dict[str, str]
) -> None:
    code = await open_episode(client, api_env, "S1")
    status, _, _ = await client.call("PUT", "/v1/children/S1/profile", "carer-other", PROFILE)
    assert status == 403  # no profiles scope
    status, _, _ = await client.call(
        "POST",
        "/v1/check-ins",
        "carer-other",
        {
            "child_ref": "S1@LA-EXAMPLE",
            "seen_at": "2026-11-28T09:00:00Z",
            "reporter": {"role": "carer"},
        },
    )
    assert status == 403
    status, _, _ = await client.call("GET", f"/v1/episodes/{code}", "duty-other")
    assert status == 403
    status, _, _ = await client.call(
        "POST", f"/v1/episodes/{code}/acknowledgements", "duty-other", {"recipient_id": "dsw-day"}
    )
    assert status == 403
    status, _, _ = await client.call(
        "POST",
        f"/v1/episodes/{code}/updates",
        "carer-other",
        {"kind": "sighting", "reporter": {"role": "carer"}},
    )
    assert status == 403
    status, _, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
    assert status == 200


async def test_another_authority_can_never_block_a_report(
    client: Client, api_env: dict[str, str]
) -> None:
    """Finding 5 of issue #10: LA-OTHER's case system profiled an unprofiled reference first;
    LA-EXAMPLE's carer then got 403 reporting the child missing, and its case system 403
    correcting the profile. References are scoped by authority: LA-OTHER's 'U1' is another
    child, so neither call of LA-EXAMPLE is affected and each child alerts its own team."""
    other = {**PROFILE, "local_authority": "LA-OTHER", "police_force": None}
    status, body, _ = await client.call("PUT", "/v1/children/U1/profile", "case-other", other)
    assert status == 202, body
    status, body, _ = await client.call(
        "POST", "/v1/absences", "carer", {**ABSENCE, "child_ref": "U1"}
    )
    assert status == 202, body
    status, body, _ = await client.call("PUT", "/v1/children/U1/profile", "case", PROFILE)
    assert status == 202, body
    alerts = await wait_alerts(api_env, lambda a: any(x["child_ref"] == "U1" for x in a))
    first = next(a for a in alerts if a["child_ref"] == "U1")
    assert first["local_authority"] == "LA-EXAMPLE"
    # LA-OTHER's own child of that reference is reported, and alerts, on its own.
    status, body, _ = await client.call(
        "POST", "/v1/absences", "carer-other", {**ABSENCE, "child_ref": "U1"}
    )
    assert status == 202, body
    alerts = await wait_alerts(api_env, lambda a: any(x["child_ref"] == "U1@LA-OTHER" for x in a))
    theirs = next(a for a in alerts if a["child_ref"] == "U1@LA-OTHER")
    assert theirs["episode_code"] != first["episode_code"]


def signed_sms(fake: FakeTwilio, url: str, sender: str, text: str) -> tuple[dict[str, str], str]:
    params = {
        "From": sender,
        "To": "+447700900999",
        "Body": text,
        "MessageSid": f"SM{abs(hash((sender, text))):032x}"[:34],
        "AccountSid": fake.account_sid,
    }
    return params, RequestValidator(fake.auth_token).compute_signature(url, params)


async def test_sms_reply_from_notified_number_acknowledges(
    client: Client, api_env: dict[str, str], twilio: FakeTwilio
) -> None:
    code = await open_episode(client, api_env, "R1")
    await asyncio.to_thread(twilio.wait_for_requests_sync, 1, 20)
    await dispatch_settled(api_env)  # dispatch has recorded who was notified
    url = client.base + "/v1/webhooks/twilio/inbound"

    stranger, sig = signed_sms(twilio, url, "+447700900777", f"ACK {code}")
    status, text, _ = await client.call(
        "POST",
        "/v1/webhooks/twilio/inbound",
        None,
        data=stranger,
        headers={"X-Twilio-Signature": sig},
    )
    assert status == 200 and "not alerted" in text

    liaison, sig = signed_sms(twilio, url, "+447700900105", f"  ack {code.lower()} ")
    status, _, _ = await client.call(
        "POST",
        "/v1/webhooks/twilio/inbound",
        None,
        data=liaison,
        headers={"X-Twilio-Signature": "forged" + sig},
    )
    assert status == 403
    status, text, headers = await client.call(
        "POST",
        "/v1/webhooks/twilio/inbound",
        None,
        data=liaison,
        headers={"X-Twilio-Signature": sig},
    )
    assert status == 200 and f"Acknowledged episode {code}" in text
    assert headers["Content-Type"].startswith("application/xml") and "<Response>" in text

    for _ in range(30):
        _, state, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
        if state.get("acknowledged_by"):
            break
        await asyncio.sleep(0.5)
    assert list(state["acknowledged_by"]) == ["pl-1"]


async def acknowledged_by(client: Client, code: str, *, within: float = 15) -> dict[str, Any]:
    """The episode's acknowledgers once any are recorded (or {} after ``within`` seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        _, state, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
        if state.get("acknowledged_by") or asyncio.get_running_loop().time() > deadline:
            return dict(state.get("acknowledged_by") or {})
        await asyncio.sleep(0.3)


async def test_signed_link_acknowledges_only_from_its_confirmation_page(
    client: Client, api_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Finding 3 of issue #10: a GET or HEAD on the link acknowledged, so mail scanners and
    link previews silenced escalation. Now only the POST from the page's button does."""
    code = await open_episode(client, api_env, "L1")
    first = (await asyncio.to_thread(twilio.wait_for_requests_sync, 1, 20))[0]
    link = (first.body or "").rsplit(" ", 1)[1]
    assert link.startswith(client.base + "/a/")
    path = link.removeprefix(client.base)
    for method in ("HEAD", "GET", "GET"):  # a scanner, a preview, the person opening it
        status, page, headers = await client.call(method, path, None)
        assert status == 200
        assert (
            headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
        )
    assert f"Acknowledge episode {code}" in page and "method=post" in page
    # Give a wrongly made acknowledgement every chance to land: a later event of the same
    # child (applied after anything the GETs produced) must find none.
    status, _, _ = await client.call(
        "POST",
        f"/v1/episodes/{code}/updates",
        "carer",
        {"kind": "information", "reporter": {"role": "carer"}},
    )
    assert status == 202
    assert await acknowledged_by(client, code, within=4) == {}
    status, page, _ = await client.call("POST", path, None)
    assert status == 200 and "Acknowledged" in page
    status, _, _ = await client.call("POST", path + "x", None)
    assert status == 403
    assert len(await acknowledged_by(client, code)) == 1


async def test_api_acknowledges_only_for_the_notified_or_the_keys_responder(
    client: Client, api_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Finding 3 of issue #10: any recipient_id (even 'nobody-at-all') got 202 and silenced
    the unacknowledged steps."""
    code = await open_episode(client, api_env, "K1")
    await asyncio.to_thread(twilio.wait_for_requests_sync, 2, 20)
    path = f"/v1/episodes/{code}/acknowledgements"
    status, body, _ = await client.call(
        "POST", path, "duty-team", {"recipient_id": "nobody-at-all"}
    )
    assert status == 422 and body["detail"][0]["field"] == "recipient_id"
    status, body, _ = await client.call("POST", path, "duty-team", {})
    assert status == 422 and body["detail"][0]["field"] == "recipient_id"
    assert await acknowledged_by(client, code, within=3) == {}
    # The police liaison was messaged at T+0 (the child's force is on the profile).
    for _ in range(50):
        status, body, _ = await client.call("POST", path, "duty-team", {"recipient_id": "pl-1"})
        if status == 202:
            break
        await asyncio.sleep(0.2)  # dispatch records who was messaged a moment after sending
    assert status == 202, body
    # A desk key acknowledges in its own responder's name without naming anyone.
    status, body, _ = await client.call("POST", path, "duty", {})
    assert status == 202, body
    deadline = asyncio.get_running_loop().time() + 15
    while len(who := await acknowledged_by(client, code)) < 2:
        assert asyncio.get_running_loop().time() < deadline, who
        await asyncio.sleep(0.3)
    assert set(who) == {"pl-1", "dsw-day"}
    records = await read_topic(
        api_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{api_env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events",
        until=10_000,
        within=3,
    )
    acks = {
        r["detail"]["recipient_id"]: r["detail"] for r in records if r["action"] == "acknowledged"
    }
    assert acks["pl-1"]["basis"] == "notified" and acks["pl-1"]["api_key_id"] == "duty-shared"
    assert (
        acks["dsw-day"]["basis"] == "named_responder"
        and acks["dsw-day"]["api_key_id"] == "duty-team"
    )


async def test_openapi_document_lists_every_route(client: Client) -> None:
    status, doc, _ = await client.call("GET", "/openapi.json", None)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/v1/check-ins",
        "/v1/absences",
        "/v1/returns",
        "/v1/episodes",
        "/v1/episodes/{code}",
        "/v1/episodes/{code}/updates",
        "/v1/episodes/{code}/acknowledgements",
        "/v1/episodes/{code}/return-interview",
        "/v1/children/{ref}/profile",
    }
    assert "AbsenceReported" in doc["components"]["schemas"]
    listed = doc["paths"]["/v1/episodes"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"status", "limit", "cursor"}
    assert "EpisodeSummary" in doc["components"]["schemas"]


async def test_the_rhi_link_records_the_interview_from_its_form_only(
    client: Client, api_env: dict[str, str]
) -> None:
    """Issue 13: the reminder's "Record it" link was an acknowledgement link, which does
    nothing on a closed episode. Now it opens a form; only the form's POST records."""
    code = await open_episode(client, api_env, "R1")
    await report_return(client, "R1", "2026-11-28T15:00:00Z")
    await engine_settled(api_env)
    key = Settings().link_key
    now = datetime.now(UTC)
    path = f"/r/{sign_rhi_link(key, code, 'dsw-day', now + timedelta(days=1))}"
    status, page, headers = await client.call("GET", path, None)
    assert status == 200 and "offered_on" in page and "method=post" in page
    assert (
        headers["Cache-Control"] == "no-store"
        and "default-src 'none'" in (headers["Content-Security-Policy"])
    )
    # Refused: another kind of link, a tampered or expired one, and hostile bodies.
    ack_path = f"/r/{sign_link(key, code, 'dsw-day', now + timedelta(days=1))}"
    expired = f"/r/{sign_rhi_link(key, code, 'dsw-day', now - timedelta(seconds=1))}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    tomorrow = (now + timedelta(days=2)).date().isoformat()
    for bad_path, data, want, says in [
        (ack_path, b"offered_on=2026-11-28", 403, "Link not valid"),
        (path + "x", b"offered_on=2026-11-28", 403, "Link not valid"),
        (expired, b"offered_on=2026-11-28", 403, "Link not valid"),
        (path, f"offered_on={tomorrow}".encode(), 400, "offered_on"),
        (path, b"offered_on=0001-01-01", 400, "offered_on"),
        (path, b"offered_on=2026-11-28&accepted=maybe", 400, "accepted"),
        (path, b"offered_on=%ff%fe", 400, "UTF-8"),
        (path, b"offered_on=" + b"[" * 60_000, 400, "too large"),
    ]:
        status, page, _ = await client.call("POST", bad_path, None, data=data, headers=form)
        assert (status, says in page) == (want, True), (bad_path, data[:40], status, page)
    today = now.date().isoformat()
    data = f"offered_on={today}&accepted=yes".encode()
    status, page, _ = await client.call("POST", path, None, data=data, headers=form)
    assert status == 200 and "is recorded" in page
    status, _, _ = await client.call("POST", path, None, data=data, headers=form)  # a retry
    assert status == 200
    await engine_settled(api_env)
    records = await read_topic(
        api_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{api_env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events",
        until=10_000,
        within=3,
    )
    recorded = [
        r
        for r in records
        if r["episode_code"] == code and r["action"] == "return_interview_recorded"
    ]
    assert [(r["detail"]["offered_on"], r["detail"]["accepted"]) for r in recorded] == [
        (today, True)
    ]


async def _listed(
    client: Client, who: str, query: str, want: int
) -> tuple[int, Any, dict[str, str]]:
    """GET /v1/episodes until it lists ``want`` episodes (the engine's summaries reach every
    worker's memory through a changelog, a moment after the alerts), within 10 s."""
    return await poll(
        lambda: client.call("GET", f"/v1/episodes{query}", who),
        lambda got: got[0] != 200 or len(got[1]["episodes"]) >= want,
        f"{want} episodes listed for {query}",
    )


async def test_the_episode_list_answers_from_the_read_model_scoped_and_uncached(
    client: Client, api_env: dict[str, str]
) -> None:
    """Issue 14, part 1: open episodes per local authority, high risk first, paged, never
    cached; only for keys with episodes:read, only their own authorities; bad queries 400."""
    high = await open_episode(client, api_env, "L1")  # county lines: high
    status, _, _ = await client.call("PUT", "/v1/children/L2/profile", "case", PROFILE)
    assert status == 202
    await engine_settled(api_env)  # a child with no profile is high: L2 has one, no flags
    status, _, _ = await client.call(
        "POST",
        "/v1/absences",
        "carer",
        {
            **ABSENCE,
            "child_ref": "L2",
            "reported_flags": [],
            "last_seen_at": "2026-11-28T09:00:00Z",
        },
    )
    assert status == 202
    status, body, headers = await _listed(client, "duty", "?status=open", 2)
    assert status == 200 and headers.get("Cache-Control") == "no-store"
    listed = body["episodes"]
    assert [e["child_ref"] for e in listed] == ["L1", "L2"]  # high risk before the longer one
    first = listed[0]
    assert first["episode_code"] == high and first["tier"] == "high" and first["initials"] == "RT"
    assert first["next_step"] and first["next_due_at"]
    assert "Private Name" not in json.dumps(body)
    # The desk polls with the validator: an unchanged list is an empty 304, still no-store.
    tag = {k.lower(): v for k, v in headers.items()}["etag"]
    status, empty, again = await client.call(
        "GET", "/v1/episodes?status=open", "duty", headers={"If-None-Match": tag}
    )
    again = {k.lower(): v for k, v in again.items()}
    assert (status, empty, again["etag"], again["cache-control"]) == (304, "", tag, "no-store")
    status, _, other = await client.call(
        "GET", "/v1/episodes?status=open", "duty", headers={"If-None-Match": '"stale"'}
    )
    assert status == 200 and {k.lower(): v for k, v in other.items()}["etag"] == tag
    status, page, _ = await client.call("GET", "/v1/episodes?limit=1", "duty")
    assert status == 200 and len(page["episodes"]) == 1 and page["next_cursor"] == "1"
    assert page["total"] == 2
    status, rest, _ = await client.call("GET", "/v1/episodes?limit=1&cursor=1", "duty")
    assert [e["child_ref"] for e in rest["episodes"]] == ["L2"] and rest["next_cursor"] is None

    status, body, _ = await client.call("GET", "/v1/episodes", "duty-other")
    assert status == 200 and body["episodes"] == []  # another authority sees none of them
    status, _, _ = await client.call("GET", "/v1/episodes?local_authority=LA-EXAMPLE", "duty-other")
    assert status == 403
    status, _, _ = await client.call("GET", "/v1/episodes", "carer")  # no episodes:read
    assert status == 403
    status, _, _ = await client.call("GET", "/v1/episodes", None)
    assert status == 401
    for bad, field in (
        ("status=gone", "status"),
        ("limit=1000", "limit"),
        ("limit=-1", "limit"),
        ("cursor=x", "cursor"),
        ("closed_days=" + "9" * 400, "closed_days"),
        ("local_authority=%ff%fe", "local_authority"),
        ("local_authority=" + "A" * 5_000, "local_authority"),
    ):
        status, body, _ = await client.call("GET", f"/v1/episodes?{bad}", "duty")
        assert status == 400 and body["detail"]["field"] == field, (bad[:40], status, body)
    status, _, _ = await client.call("GET", "/v1/episodes?status=" + "x" * 20_000, "duty")
    assert status in (400, 414)  # beyond aiohttp's request line limit: refused before the view

    await report_return(client, "L1", "2026-11-28T12:00:00Z")
    status, body, _ = await _listed(client, "duty", "?status=closed&closed_days=90", 1)
    assert [e["child_ref"] for e in body["episodes"]] == ["L1"]
    assert body["episodes"][0]["status"] == "closed"


async def test_the_episode_shows_who_was_told_and_each_delivery_status(
    client: Client, api_env: dict[str, str], twilio: FakeTwilio
) -> None:
    """Issue 14: `notifications` in the episode view, from the table dispatch writes, on any
    worker: role, channel and status per person, a receipt moving it on; addresses only for
    keys with contacts:read; never cached."""
    code = await open_episode(client, api_env, "W1")

    async def told(who: str = "duty") -> list[dict[str, Any]]:
        status, body, headers = await client.call("GET", f"/v1/episodes/{code}", who)
        assert status == 200 and headers.get("Cache-Control") == "no-store", (status, body)
        return list(body["notifications"])

    def step_sent(rows: list[dict[str, Any]]) -> bool:
        firsts = [r for r in rows if r["step_id"] == "high-t0"]
        return len(firsts) >= 4 and all(r["status"] in ("queued", "sent") for r in firsts)

    rows = await poll(told, step_sent, "the first step's messages recorded", within=30)
    assert {(r["recipient_id"], r["channel"]) for r in rows if r["step_id"] == "high-t0"} >= {
        ("pl-1", "sms"),
        ("pl-1", "email"),
    }
    assert all(r["role"] for r in rows), "each person is shown with the role they were told as"
    assert all("address" not in r for r in rows)
    status, body, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
    assert body["people"]["pl-1"] and body["people"]["pl-1"] != "pl-1"  # a display name
    assert "+44" not in json.dumps(body) and "@" not in json.dumps(body)

    lead = {(r["recipient_id"], r["channel"]): r.get("address") for r in await told("duty-lead")}
    assert lead[("pl-1", "sms")] == "+447700900105"
    assert "@" in str(lead[("pl-1", "email")])

    sms = next(
        r
        for r in twilio.requests
        if r.message_sid and r.notification_id == f"{code}:high-t0:pl-1:sms"
    )
    posted = await twilio.post_status(sms, "delivered")
    assert posted.response_status == 204

    def delivered(rows: list[dict[str, Any]]) -> bool:
        return any(
            r["notification_id"] == sms.notification_id and r["status"] == "delivered" for r in rows
        )

    await poll(told, delivered, "the receipt shown on the episode", within=20)
    status, _, _ = await client.call("GET", f"/v1/episodes/{code}", "duty-other")
    assert status == 403
    status, _, _ = await client.call("GET", f"/v1/episodes/{code}", "carer")
    assert status == 403
    status, _, _ = await client.call("GET", f"/v1/episodes/{code}", None)
    assert status == 401


async def test_a_false_report_is_cancelled_by_the_duty_team_only(
    client: Client, api_env: dict[str, str]
) -> None:
    """Issue 14: POST /v1/episodes/{code}/cancellation (scope episodes:cancel, the key's own
    authorities): the ladder stops, everyone told gets a cancelled notice, the list shows it
    cancelled; bad reasons are 422 naming the field, hostile bodies 4xx."""
    code = await open_episode(client, api_env, "X1")
    path = f"/v1/episodes/{code}/cancellation"
    body = {"reason": "not_missing", "reporter": {"role": "social_worker"}}
    assert (await client.call("POST", path, None, body))[0] == 401
    assert (await client.call("POST", path, "carer", body))[0] == 403  # no episodes:cancel
    assert (await client.call("POST", path, "duty-other", body))[0] == 403  # another authority
    for bad, field in (
        ({**body, "reason": "changed my mind"}, "reason"),
        ({**body, "reporter": {"role": "x" * 10_000}}, "reporter.role"),
        ({**body, "occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
        ({**body, "note": {"a": [[[[[[[[[[1]]]]]]]]]]}}, "note"),
    ):
        status, problem, _ = await client.call("POST", path, "duty", bad)
        assert status == 422, (bad, status, problem)
        assert field in {e["field"] for e in problem["detail"]}, problem
    status, _, _ = await client.call("POST", "/v1/episodes/ZZZZZZ/cancellation", "duty", body)
    assert status == 404

    status, accepted, _ = await client.call("POST", path, "duty", body)
    assert status == 202, accepted
    alerts = await wait_alerts(
        api_env, lambda a: any(x["episode_code"] == code and x["kind"] == "cancelled" for x in a)
    )
    notice = next(a for a in alerts if a["episode_code"] == code and a["kind"] == "cancelled")
    told = [r for a in alerts if a["episode_code"] == code and a is not notice for r in a["roles"]]
    assert notice["roles"] == list(dict.fromkeys(told)) and notice["cancel_reason"] == "not_missing"
    status, listed, _ = await _listed(client, "duty", "?status=cancelled", 1)
    assert [(e["episode_code"], e["status"]) for e in listed["episodes"]] == [(code, "cancelled")]
    status, view, _ = await client.call("GET", f"/v1/episodes/{code}", "duty")
    assert status == 200 and view["status"] == "cancelled"
    await engine_settled(api_env)
    records = await read_topic(
        api_env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        f"{api_env['MISSING_ALERTS_TOPIC_PREFIX']}.episode-events",
        until=10_000,
        within=5,
    )
    mine = [r for r in records if r.get("episode_code") == code]
    assert [r["detail"]["reason"] for r in mine if r["action"] == "cancelled"] == ["not_missing"]
    assert "api_key_id" in next(r["detail"] for r in mine if r["action"] == "cancelled")


async def test_the_carer_gets_the_episode_code_and_reads_its_status(
    client: Client, api_env: dict[str, str]
) -> None:
    """Issue 14, part 3: the absence's 202 names the episode it opens (or joins), and the
    carer's key reads its status, acknowledgements by rota name, from any worker."""
    status, _, _ = await client.call("PUT", "/v1/children/S1/profile", "case", PROFILE)
    assert status == 202
    await engine_settled(api_env)
    status, accepted, _ = await client.call(
        "POST", "/v1/absences", "carer", {**ABSENCE, "child_ref": "S1"}
    )
    assert status == 202 and len(accepted["episode_code"]) == 6, accepted
    code = accepted["episode_code"]
    path = f"/v1/episodes/{code}/status"
    status, seen, headers = await poll(
        lambda: client.call("GET", path, "carer"), lambda got: got[0] != 404, "status known"
    )
    assert status == 200 and seen["status"] == "open" and seen["acknowledged"] == []
    assert headers.get("Cache-Control") == "no-store"
    # A second report while it is open joins it: the same code comes back.
    status, again, _ = await client.call(
        "POST", "/v1/absences", "carer", {**ABSENCE, "child_ref": "S1"}
    )
    assert status == 202 and again["episode_code"] == code

    status, _, _ = await client.call("POST", f"/v1/episodes/{code}/acknowledgements", "duty", {})
    assert status == 202
    got = await poll(
        lambda: client.call("GET", path, "carer"), lambda got: got[1]["acknowledged"], "acked"
    )
    (ack,) = got[1]["acknowledged"]
    assert ack["by"] == "Duty social worker (day)" and "+44" not in json.dumps(got[1])

    assert (await client.call("GET", path, None))[0] == 401
    assert (await client.call("GET", path, "case"))[0] == 403  # profiles only
    assert (await client.call("GET", path, "carer-other"))[0] == 404  # not their authority
    for hostile in ("x" * 5000, "%ff%fe", "..%2f..%2fetc"):
        assert (await client.call("GET", f"/v1/episodes/{hostile}/status", "carer"))[0] == 404
