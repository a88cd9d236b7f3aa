"""The carer page (GET /carer) in a real browser against a real worker and broker.

Headless Debian Chromium driven by Playwright (tests/support/browser.py): sign in with the
organisation's key, report an absence, find it on the events topic with the right fields, see
the API's field error next to the field, survive a network error without sending twice, report a
return and a check-in, sign out. Screenshots go to test-artifacts/carer-page-*.png.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from schemas.common import Reporter, RiskFlag
from streams.web.pages import ASSETS, CONTENT_SECURITY_POLICY
from tests.support.browser import (
    ARTIFACTS,
    BROWSER_TZ,
    LAYOUT_PROBLEMS_JS,
    browser,
    chromium,
    playwright,
    wait_http,
    watch_problems,
)
from tests.support.kafka import read_topic
from tests.support.wait import poll
from tests.support.worker import REPO, WorkerProcess

DUTY_SECRET = "test-duty-" + secrets.token_urlsafe(16)
STATIC = REPO / "streams" / "web" / "static"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# -- the page's static contract (no browser) ------------------------------------------------------


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self.options: list[str] = []
        self.inline_script = False
        self.inline_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.values.setdefault(str(a["name"]), []).append(str(a.get("value")))
        if tag == "option":
            self.options.append(str(a.get("value")))
        if tag == "script" and not a.get("src"):
            self.inline_script = True
        if tag == "style" or "style" in a or any(k.startswith("on") for k in a):
            self.inline_style = True


def test_page_offers_every_risk_flag_and_only_valid_roles() -> None:
    parser = _Inputs()
    parser.feed((STATIC / "carer.html").read_text())
    # "immediate danger" is its own checkbox (the immediate_danger field), not a concern flag.
    expected = {f.value for f in RiskFlag} - {RiskFlag.IMMEDIATE_DANGER.value}
    assert set(parser.values["reported_flags"]) == expected
    assert set(parser.values["immediate_danger"]) == {"true"}
    roles = set(get_args(Reporter.model_fields["role"].annotation))
    assert parser.options and set(parser.options) <= roles
    # The CSP forbids inline code; the page must not rely on any.
    assert not parser.inline_script and not parser.inline_style
    for path, (name, _ctype) in ASSETS.items():
        assert (STATIC / name).is_file(), path


# -- the browser test -----------------------------------------------------------------------------


@pytest.fixture
def carer_key(pipeline_env: dict[str, str], tmp_path: Path) -> str:
    """A fresh events:write key for LA-EXAMPLE, in a key file the worker will load."""
    secret = "test-carer-" + secrets.token_urlsafe(16)
    path = tmp_path / "api_keys.yaml"
    path.write_text(
        "keys:\n"
        "  - id: test-carer\n"
        "    organisation: Test Care Ltd\n"
        f"    sha256: {hashlib.sha256(secret.encode()).hexdigest()}\n"
        "    local_authorities: [LA-EXAMPLE]\n"
        '    scopes: ["events:write"]\n'
        # The duty team, which cancels the report at the end (issue 14).
        "  - id: test-duty\n"
        "    organisation: LA-EXAMPLE duty team\n"
        f"    sha256: {hashlib.sha256(DUTY_SECRET.encode()).hexdigest()}\n"
        "    local_authorities: [LA-EXAMPLE]\n"
        '    scopes: ["episodes:read", "episodes:cancel"]\n'
    )
    pipeline_env["MISSING_ALERTS_API_KEYS_FILE"] = str(path)
    return secret


async def _status(page: Any, want: str, within: float = 20.0) -> str:
    """Press "Check status" until the answer says ``want``: the engine writes the read model a
    moment after each event, and the page says "try again shortly" until then."""
    box = page.locator("#episode-status")

    async def check() -> str:
        async with page.expect_response("**/v1/episodes/*/status"):
            await page.get_by_role("button", name="Check status").click()
        await box.wait_for(state="visible")
        return str(await box.inner_text())

    return await poll(check, lambda text: want in text, f"status saying {want!r}", within=within)


async def _events(env: dict[str, str], until: int, within: float = 30.0) -> list[dict[str, Any]]:
    topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.events"
    return await read_topic(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic, until=until, within=within
    )


@pytest.mark.integration
async def test_carer_reports_absence_return_and_check_in_from_a_phone(
    worker: WorkerProcess, pipeline_env: dict[str, str], carer_key: str, tmp_path: Path
) -> None:
    # Fails (never skips) without Chromium or playwright, saying how to get them.
    chromium()
    playwright()
    started = time.monotonic()
    async with browser(tmp_path / "chromium-profile") as context:
        await _carer_scenario(worker, pipeline_env, carer_key, context)
    print(f"carer page browser test: {time.monotonic() - started:.1f}s incl. worker start")


async def _carer_scenario(
    worker: WorkerProcess, env: dict[str, str], carer_key: str, browser: Any
) -> None:
    worker.start()
    worker.wait_ready()
    base = f"http://127.0.0.1:{env['MISSING_ALERTS_WEB_PORT']}"
    await wait_http(browser, f"{base}/carer")
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[Path] = []

    async def shot(page: Any, name: str, *, full_page: bool = False) -> None:
        path = ARTIFACTS / f"carer-page-{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        shots.append(path)

    # Assets: right content types, the strict CSP on every one.
    for path, (_name, ctype) in ASSETS.items():
        res = await browser.request.get(base + path)
        assert res.status == 200, path
        assert res.headers["content-type"].startswith(ctype), (path, res.headers)
        assert res.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert res.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY

    page = browser.pages[0] if browser.pages else await browser.new_page()
    problems = watch_problems(page)
    requests: list[Any] = []
    page.on("request", lambda req: requests.append(req) if "/v1/" in req.url else None)

    await page.goto(f"{base}/carer")
    signin = page.get_by_role("region", name="Sign in")
    key_box = page.get_by_label("Your organisation's API key")
    await key_box.wait_for()
    assert await page.locator("#reports").is_hidden()

    # -- sign in: a wrong key is refused, the right one accepted ----------------------------------
    await key_box.fill("not-a-real-key")
    await signin.get_by_role("button", name="Sign in").click()
    refused = page.locator("#signin .field-error")
    await refused.wait_for()
    assert "Not authorised" in await refused.inner_text()
    await shot(page, "1-signin-refused")

    await key_box.fill(carer_key)
    await signin.get_by_role("button", name="Sign in").click()
    await page.locator("#reports").wait_for(state="visible")
    assert await page.evaluate("sessionStorage.getItem('missing-alerts.carer.api-key')") == (
        carer_key
    )
    assert await page.evaluate("localStorage.length") == 0
    assert carer_key not in page.url
    assert await key_box.input_value() == ""

    # -- absence ----------------------------------------------------------------------------------
    absence = page.get_by_role("form", name="A child is missing or away")
    seen_local = (datetime.now(ZoneInfo(BROWSER_TZ)) - timedelta(minutes=45)).replace(
        second=0, microsecond=0, tzinfo=None
    )
    await absence.get_by_label("Child reference").fill("C123")
    await absence.get_by_label("When was the child last seen?").fill(
        seen_local.strftime("%Y-%m-%dT%H:%M")
    )
    await absence.get_by_label(re.compile(r"^Yes\b")).check()  # "Yes, away"
    await absence.get_by_label("Trafficking is suspected").check()
    await absence.get_by_label("Criminal exploitation").check()
    await absence.get_by_label("The child is in immediate danger").check()
    await absence.get_by_label("What happened? (optional)").fill("Left after tea with two adults.")
    await shot(page, "2-absence-form", full_page=True)
    for width in (390, 375, 320):
        await page.set_viewport_size({"width": width, "height": 844})
        layout = await page.evaluate(LAYOUT_PROBLEMS_JS)
        assert layout == {"small": [], "overflow": 0}, (width, layout)
    await page.set_viewport_size({"width": 390, "height": 844})

    async with page.expect_response("**/v1/absences") as caught:
        await absence.get_by_role("button", name="Send absence report").click()
    response = await caught.value
    assert response.status == 202, await response.text()
    sent = await response.request.all_headers()
    assert UUID_RE.match(sent["idempotency-key"])
    assert sent["authorization"] == f"Bearer {carer_key}"
    assert carer_key not in response.url

    outcome = page.locator("#outcome")
    await page.locator("#outcome.outcome-success").wait_for()
    assert "Absence reported for C123" in await outcome.inner_text()
    event_id = await page.locator("#event-id").inner_text()
    assert UUID_RE.match(event_id)
    # Issue 14: the episode code is shown, and its status can be looked up with the key.
    code = await page.locator("#episode-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{6}", code), code
    assert await page.locator("#status-code").input_value() == code
    await shot(page, "3-absence-sent")
    text = await _status(page, "Open:")
    assert "Not yet acknowledged" in text and code in text
    await shot(page, "3b-episode-status", full_page=True)
    # The form is cleared: nothing about the child is left behind.
    assert await absence.get_by_label("Child reference").input_value() == ""
    assert not await absence.get_by_label("Trafficking is suspected").is_checked()
    assert await absence.get_by_label("What happened? (optional)").input_value() == ""

    records = await _events(env, until=1)
    assert len(records) == 1, records  # the sign-in check recorded nothing
    event = records[0]
    assert event["event_id"] == event_id
    assert event["type"] == "absence" and event["child_ref"] == "C123"
    assert event["category"] == "away"
    assert set(event["reported_flags"]) == {
        RiskFlag.TRAFFICKING_SUSPECTED.value,
        RiskFlag.CCE.value,
    }
    assert event["immediate_danger"] is True
    assert event["circumstances"] == "Left after tea with two adults."
    assert event["reporter"]["role"] == "carer"
    seen_utc = seen_local.replace(tzinfo=ZoneInfo(BROWSER_TZ))
    assert datetime.fromisoformat(event["last_seen_at"]) == seen_utc

    # -- an invalid report: the API's field error shows next to the field -------------------------
    await absence.get_by_label("Child reference").fill("C 123")
    async with page.expect_response("**/v1/absences") as caught:
        await absence.get_by_role("button", name="Send absence report").click()
    assert (await caught.value).status == 422
    error = absence.locator(".field[data-field=child_ref] .field-error")
    await error.wait_for()
    assert "no spaces" in await error.inner_text()
    assert await absence.get_by_label("Child reference").get_attribute("aria-invalid") == "true"
    assert "Not sent" in await outcome.inner_text()
    await shot(page, "4-field-error")

    # -- return -----------------------------------------------------------------------------------
    await page.get_by_text("Back or found", exact=True).click()
    back = page.get_by_role("form", name="A child is back")
    await back.wait_for(state="visible")
    assert await absence.is_hidden()
    await back.get_by_label("Child reference").fill("C123")
    await back.get_by_label("Was found (for example by the police)").check()
    async with page.expect_response("**/v1/returns") as caught:
        await back.get_by_role("button", name="Send return report").click()
    assert (await caught.value).status == 202
    await page.locator("#outcome.outcome-success").wait_for()
    assert "Return recorded for C123" in await outcome.inner_text()
    return_id = await page.locator("#event-id").inner_text()
    await shot(page, "5-return-sent")

    # -- check-in through a network failure: the retry reuses the Idempotency-Key -----------------
    await page.get_by_text("Seen (check-in)", exact=True).click()
    check_in = page.get_by_role("form", name="I have seen the child")
    await check_in.get_by_label("Child reference").fill("C123")
    await page.route("**/v1/check-ins", lambda route: route.abort("internetdisconnected"))
    await check_in.get_by_role("button", name="Send check-in").click()
    await page.locator("#outcome.outcome-retry").wait_for()
    assert "try again" in (await outcome.inner_text()).lower()
    await shot(page, "6-network-error")
    await page.unroute("**/v1/check-ins")
    async with page.expect_response("**/v1/check-ins") as caught:
        await check_in.get_by_role("button", name="Send check-in").click()
    assert (await caught.value).status == 202
    await page.locator("#outcome.outcome-success").wait_for()
    check_in_id = await page.locator("#event-id").inner_text()
    attempts = [
        h.get("idempotency-key")
        for h in [await r.all_headers() for r in requests if r.url.endswith("/v1/check-ins")]
    ]
    # Two sign-in checks (wrong key, right key; no Idempotency-Key), then the aborted send and
    # the retried one with the same key.
    assert attempts[:2] == [None, None], attempts
    assert len(attempts) == 4 and attempts[2] and attempts[2] == attempts[3], attempts

    records = await _events(env, until=4, within=5)
    assert [(r["type"], r["event_id"]) for r in records] == [
        ("absence", event_id),
        ("return", return_id),
        ("check_in", check_in_id),
    ], records
    assert records[1]["how"] == "found" and records[1]["child_ref"] == "C123"
    assert records[2]["present_at_placement"] is True

    # -- the duty team cancels the report as false: the carer sees it -----------------------------
    res = await browser.request.post(
        f"{base}/v1/episodes/{code}/cancellation",
        headers={"Authorization": f"Bearer {DUTY_SECRET}", "Content-Type": "application/json"},
        data='{"reason": "not_missing", "reporter": {"role": "social_worker"}}',
    )
    assert res.status == 202, await res.text()
    await page.locator("#status-code").fill(code.lower())  # typed in lower case: still found
    text = await _status(page, "Cancelled:")
    assert "the child was not missing" in text
    await shot(page, "7-episode-cancelled", full_page=True)

    # -- sign out forgets the key -----------------------------------------------------------------
    await page.get_by_role("button", name="Sign out").click()
    await key_box.wait_for(state="visible")
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.locator("#outcome").is_hidden()

    assert not problems, problems
    for png in shots:
        assert png.stat().st_size > 10_000, png
