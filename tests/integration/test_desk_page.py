"""The duty desk (GET /desk) in a real browser against a real worker, broker and fake Twilio.

A duty worker signs in on a desktop; a high-risk absence reported meanwhile appears in the list
without a reload; the episode shows who was told and, when the fake Twilio posts a receipt, the
delivery status changes; the worker acknowledges as a person who was told, and the ladder's next
until-acknowledged step never fires (the later milestone does). A second report, made on the
carer page in another tab, is cancelled from the desk as false, and the carer page then shows
the cancellation. At 390 px the list and the episode each fit the screen. Screenshots go to
test-artifacts/desk-page-*.png.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.web.pages import ASSETS, CONTENT_SECURITY_POLICY
from tests.integration.test_escalation import wait_alerts
from tests.support.browser import (
    ARTIFACTS,
    LAYOUT_PROBLEMS_JS,
    PHONE,
    browser,
    chromium,
    playwright,
    wait_http,
    watch_problems,
)
from tests.support.clock import TestClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.wait import poll, until
from tests.support.worker import REPO, WorkerProcess

STATIC = REPO / "streams" / "web" / "static"
DESK_SECRET = "test-desk-" + secrets.token_urlsafe(16)
CARER_SECRET = "test-carer-" + secrets.token_urlsafe(16)
READER_SECRET = "test-reader-" + secrets.token_urlsafe(16)


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if (tag == "script" and not a.get("src")) or tag == "style":
            self.found.append(tag)
        self.found += [k for k in a if k == "style" or k.startswith("on")]


def test_the_desk_page_needs_no_inline_code_and_offers_every_cancel_reason() -> None:
    from schemas.common import CancelReason

    html = (STATIC / "desk.html").read_text()
    parser = _Inline()
    parser.feed(html)
    assert parser.found == []  # the CSP forbids inline code and styles
    offered = set(re.findall(r'<option value="([a-z_]+)"', html.split('id="cancel-reason"')[1]))
    assert offered >= set(CancelReason.__args__)  # type: ignore[attr-defined]
    for path in ("/desk", "/desk/desk.js", "/desk/desk.css", "/static/common.js"):
        assert path in ASSETS


def _key(kid: str, secret: str, scopes: list[str], responder: str | None = None) -> str:
    lines = [
        f"  - id: {kid}",
        f"    organisation: {kid}",
        f"    sha256: {hashlib.sha256(secret.encode()).hexdigest()}",
        "    local_authorities: [LA-EXAMPLE]",
        f"    scopes: {json.dumps(scopes)}",
    ]
    if responder:
        lines.append(f"    responder_id: {responder}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def desk_env(
    pipeline_env: dict[str, str], tmp_path: Path, twilio: FakeTwilio, clock: TestClock
) -> dict[str, str]:
    keys = tmp_path / "api_keys.yaml"
    keys.write_text(
        "keys:\n"
        + _key(
            "desk",
            DESK_SECRET,
            ["episodes:read", "acknowledge", "events:write", "episodes:cancel"],
            "tm-1",
        )
        + _key("carer", CARER_SECRET, ["events:write"])
        + _key("reader", READER_SECRET, ["deliveries:read"])  # no episodes:read
    )
    pipeline_env.update(
        {
            "MISSING_ALERTS_API_KEYS_FILE": str(keys),
            "MISSING_ALERTS_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "MISSING_ALERTS_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "MISSING_ALERTS_TWILIO_FROM_NUMBER": "+447700900999",
            "MISSING_ALERTS_TWILIO_BASE_URL": twilio.base_url,
        }
    )
    return pipeline_env


async def _report(base: str, child: str, clock: TestClock) -> str:
    """A carer's high-risk report through the API (county lines); returns the episode code."""
    body = {
        "child_ref": child,
        "last_seen_at": (clock.now() - timedelta(minutes=5)).isoformat(),
        "reporter": {"role": "carer"},
        "reported_flags": ["county_lines"],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/v1/absences",
            json=body,
            headers={"Authorization": f"Bearer {CARER_SECRET}"},
        ) as res,
    ):
        answer = await res.json()
        assert res.status == 202, answer
        return str(answer["episode_code"])


@pytest.mark.integration
async def test_a_duty_worker_follows_an_episode_from_report_to_acknowledgement(
    worker: WorkerProcess,
    desk_env: dict[str, str],
    twilio: FakeTwilio,
    clock: TestClock,
    tmp_path: Path,
) -> None:
    chromium()
    playwright()
    worker.start()
    worker.wait_ready()
    base = desk_env["MISSING_ALERTS_PUBLIC_BASE_URL"]
    async with browser(tmp_path / "chromium-profile", phone=False) as context:
        await wait_http(context, f"{base}/desk")
        await _desk_scenario(context, base, desk_env, twilio, clock)


async def _desk_scenario(
    context: Any, base: str, env: dict[str, str], twilio: FakeTwilio, clock: TestClock
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[Path] = []

    async def shot(page: Any, name: str) -> None:
        path = ARTIFACTS / f"desk-page-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    res = await context.request.get(f"{base}/desk")
    assert res.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = context.pages[0] if context.pages else await context.new_page()
    problems = watch_problems(page)
    api_answers: list[Any] = []
    page.on("response", lambda r: api_answers.append(r) if "/v1/episodes" in r.url else None)
    await page.goto(f"{base}/desk")

    # -- sign in: a key that cannot read episodes is refused, the desk's key accepted -------------
    key_box = page.get_by_label("Your team's API key")
    await key_box.fill(READER_SECRET)
    await page.get_by_role("button", name="Sign in").click()
    refused = page.locator("#signin .field-error")
    await refused.wait_for()
    assert "cannot read episodes" in await refused.inner_text()
    await key_box.fill(DESK_SECRET)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#list-empty").wait_for(state="visible")
    assert await page.evaluate("sessionStorage.getItem('missing-alerts.desk.api-key')") == (
        DESK_SECRET
    )
    await page.evaluate("window.__notReloaded = true")
    await shot(page, "1-empty-list")

    # -- a report arrives: the list shows it, high risk, without a reload -----------------------
    code = await _report(base, "DESK1", clock)
    row = page.locator(f"button[data-code='{code}']")
    await row.wait_for(timeout=30_000)
    assert await page.evaluate("window.__notReloaded") is True
    text = await row.inner_text()
    assert "HIGH" in text and "Not acknowledged" in text, text
    assert "new high-risk episode" in await page.locator("#list-state").inner_text()
    await until(lambda: _has_304(api_answers), "a 304 for the list while nothing changed")
    await shot(page, "2-new-episode")

    # -- the episode: who was told, and a receipt changing the status ---------------------------
    await row.click()
    told = page.locator("#told tbody tr")
    await poll(told.count, lambda n: n >= 4, "the first step's messages on the page", within=30)

    async def answered() -> Any:
        return _answered_sms(twilio, code)

    sms = await poll(answered, bool, "an SMS answered by the fake", within=20)
    nid = sms.notification_id
    assert nid
    status_cell = page.locator(f"#told tr[data-notification='{nid}'] td.status")
    await status_cell.wait_for()
    assert await status_cell.inner_text() == "queued"
    assert "+44" not in await page.locator("#episode-panel").inner_text()  # no contacts scope
    posted = await twilio.post_status(sms, "delivered")
    assert posted.response_status == 204
    await page.locator(f"#told tr[data-notification='{nid}'][data-status='delivered']").wait_for(
        timeout=20_000
    )
    timeline = await page.locator("#timeline").inner_text()
    assert "Reported" in timeline and "high-t0" in timeline
    await shot(page, "3-who-was-told")

    # -- acknowledge as someone who was told: the next until-ack step never fires --------------
    person = sms.notification_id.split(":")[2]
    await page.locator("#ack-as").select_option(person)
    async with page.expect_response(f"**/v1/episodes/{code}/acknowledgements") as caught:
        await page.get_by_role("button", name="Acknowledge", exact=True).click()
    assert (await caught.value).status == 202
    await page.locator("#action-outcome.outcome-success").wait_for()
    facts = page.locator("#ep-facts")
    await poll(facts.inner_text, lambda t: "Not yet" not in t, "the acknowledgement", within=20)
    await shot(page, "4-acknowledged")
    clock.advance(timedelta(hours=2, minutes=1))
    alerts = await wait_alerts(env, lambda a: _steps(a, code) >= {"high-t2h"}, within=60)
    steps = _steps(alerts, code)
    assert "high-t2h" in steps, steps  # the milestone fires whatever
    assert "high-t30m" not in steps and not any("+r" in s for s in steps), steps
    # The list beside it says it is acknowledged too (the read model, on the next poll); on a
    # desktop the list stays in view, so there is no "All episodes" button.
    assert await page.get_by_role("button", name="All episodes").is_hidden()
    await poll(row.inner_text, lambda t: "Acknowledged" in t, "the list showing the ack", within=20)

    # -- at 390 px: the list, then an episode in its place; nothing too small or too wide -------
    await page.set_viewport_size(PHONE)
    assert await page.locator("#list-panel").is_hidden()  # the open episode takes its place
    await page.get_by_role("button", name="All episodes").click()
    await row.wait_for()
    assert await page.evaluate(LAYOUT_PROBLEMS_JS) == {"small": [], "overflow": 0}
    await shot(page, "5-list-390")
    await row.click()
    await page.locator("#told tbody tr").first.wait_for()
    assert await page.locator("#list-panel").is_hidden()
    assert await page.evaluate(LAYOUT_PROBLEMS_JS) == {"small": [], "overflow": 0}
    await shot(page, "6-episode-390")
    await page.set_viewport_size({"width": 1280, "height": 900})

    await _update_return_and_interview(page)
    await _cancel_from_the_desk(context, page, base, shot)
    assert not problems, problems
    for png in shots:
        assert png.stat().st_size > 10_000, png


async def _update_return_and_interview(page: Any) -> None:
    """The other actions, on the open episode: new information (immediate danger), the return,
    then (the episode closed) the return home interview; each shows on the timeline."""
    timeline = page.locator("#timeline")
    await page.locator("summary", has_text="Add information").click()
    update = page.get_by_role("form", name="Add information")
    await update.get_by_label("What is it?").select_option("risk")
    await update.get_by_label("The child is in immediate danger").check()
    async with page.expect_response("**/updates") as caught:
        await update.get_by_role("button", name="Add information").click()
    assert (await caught.value).status == 202
    await poll(timeline.inner_text, lambda t: "IMMEDIATE DANGER" in t, "the update", within=20)

    await page.locator("summary", has_text="Record the return").first.click()
    back = page.get_by_role("form", name="Record the return", exact=True)
    await back.get_by_label("How").select_option("found")
    async with page.expect_response("**/v1/returns") as caught:
        await back.get_by_role("button", name="Record the return").click()
    assert (await caught.value).status == 202
    facts = page.locator("#ep-facts")
    await poll(facts.inner_text, lambda t: "Closed" in t, "the return", within=20)
    assert await page.locator("#ep-actions").is_hidden()  # nothing left to acknowledge

    await page.locator("summary", has_text="Record the return home interview").click()
    rhi = page.get_by_role("form", name="Record the return home interview")
    await rhi.get_by_label("Did the child accept it?").select_option("true")
    async with page.expect_response("**/return-interview") as caught:
        await rhi.get_by_role("button", name="Record the interview").click()
    assert (await caught.value).status == 202
    await poll(
        timeline.inner_text,
        lambda t: "Return home interview" in t and "accepted" in t,
        "the interview",
        within=20,
    )


async def _cancel_from_the_desk(context: Any, desk: Any, base: str, shot: Any) -> None:
    """The carer reports on the carer page in a second tab (its own key, its own storage); the
    desk cancels the report as a duplicate; the carer's lookup shows the cancellation."""
    carer = await context.new_page()
    carer_problems = watch_problems(carer)
    await carer.goto(f"{base}/carer")
    await carer.get_by_label("Your organisation's API key").fill(CARER_SECRET)
    await carer.get_by_role("button", name="Sign in").click()
    absence = carer.get_by_role("form", name="A child is missing or away")
    await absence.get_by_label("Child reference").fill("DESK2")
    await absence.get_by_label("Criminal exploitation").check()
    await absence.get_by_role("button", name="Send absence report").click()
    await carer.locator("#outcome.outcome-success").wait_for()
    code = await carer.locator("#episode-code").inner_text()
    assert await carer.evaluate("sessionStorage.getItem('missing-alerts.desk.api-key')") is None

    await desk.bring_to_front()
    row = desk.locator(f"button[data-code='{code}']")
    await row.wait_for(timeout=30_000)
    await row.click()
    await desk.locator("summary", has_text="Cancel a false report").click()
    cancel = desk.get_by_role("form", name="Cancel a false report")
    await cancel.wait_for()
    await cancel.get_by_label("Why").select_option("duplicate_report")
    await cancel.get_by_role("button", name="Cancel the report").click()
    assert "confirm" in await cancel.locator(".field-error").inner_text()  # not yet confirmed
    await cancel.get_by_label("I have checked: this report is false").check()
    async with desk.expect_response(f"**/v1/episodes/{code}/cancellation") as caught:
        await cancel.get_by_role("button", name="Cancel the report").click()
    assert (await caught.value).status == 202
    facts = desk.locator("#ep-facts")
    await poll(facts.inner_text, lambda t: "Cancelled" in t, "the episode cancelled", within=20)
    assert await desk.locator("#ep-actions").is_hidden()
    assert await desk.locator("#ep-more").is_hidden()  # nothing more to do with a false report
    await shot(desk, "7-cancelled")
    await poll(row.count, lambda n: n == 0, "the cancelled episode leaving the list", within=20)

    await carer.bring_to_front()

    async def carer_status() -> str:
        await carer.get_by_role("button", name="Check status").click()
        box = carer.locator("#episode-status")
        await box.wait_for(state="visible")
        return str(await box.inner_text())

    text = await poll(carer_status, lambda t: "Cancelled:" in t, "the carer seeing it", within=20)
    assert "it repeated another report" in text
    await shot(carer, "8-carer-sees-cancellation")
    assert not carer_problems, carer_problems


def _has_304(answers: list[Any]) -> bool:
    return any(r.status == 304 and "status=open" in r.url for r in answers)


def _answered_sms(twilio: FakeTwilio, code: str) -> Any:
    return next(
        (
            r
            for r in twilio.requests
            if r.message_sid and r.notification_id and r.notification_id.startswith(f"{code}:")
        ),
        None,
    )


def _steps(alerts: list[dict[str, Any]], code: str) -> set[str]:
    return {str(a["step_id"]) for a in alerts if a["episode_code"] == code}
