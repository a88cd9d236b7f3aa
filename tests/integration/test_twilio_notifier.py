"""The real twilio client (async) against the local Twilio fake: requests, outcomes, callbacks.

No Kafka here; the point is that the error mapping and the callback signing are checked
against what the library and the wire actually do, not against a mock.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from alerts.notifiers.base import Outcome
from alerts.notifiers.twilio_sms import TwilioSmsNotifier
from schemas.alerts import Channel, Notification
from tests.support.fake_twilio import CALLBACK_STATUSES, FakeTwilio, Reply
from tests.support.worker import free_port

pytestmark = [
    pytest.mark.integration,
    # twilio 9.13's async client still passes aiohttp's deprecated auth=BasicAuth(...).
    pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning:twilio.*"),
]

FROM = "+447700900001"
TO = "+447700900123"
BODY = "MISSING C123 (A.B.) high risk, last seen 14:05. Reply ACK K7Q2MD"
CALLBACK = "http://127.0.0.1:9/v1/webhooks/twilio/status"


def sms(
    body: str = BODY, to: str = TO, notification_id: str = "K7Q2MD:t0:dsw-1:sms"
) -> Notification:
    return Notification(
        occurred_at=datetime.now(UTC),
        child_ref="C123",
        notification_id=notification_id,
        alert_id="K7Q2MD:t0",
        episode_code="K7Q2MD",
        recipient_id="dsw-1",
        channel=Channel.SMS,
        address=to,
        body=body,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as server:
        yield server


def notifier_for(fake: FakeTwilio, **kwargs: object) -> TwilioSmsNotifier:
    options: dict[str, object] = {
        "base_url": fake.base_url,
        "status_callback_url": CALLBACK,
        "timeout_s": 2.0,
        **kwargs,
    }
    return TwilioSmsNotifier(fake.account_sid, fake.auth_token, FROM, **options)  # type: ignore[arg-type]


@pytest.fixture
async def notifier(fake: FakeTwilio) -> AsyncIterator[TwilioSmsNotifier]:
    n = notifier_for(fake)
    yield n
    await n.close()


async def test_success_posts_the_message_and_returns_the_sid(
    fake: FakeTwilio, notifier: TwilioSmsNotifier
) -> None:
    result = await notifier.send(sms())

    assert result.outcome is Outcome.DELIVERED
    assert result.error is None
    [request] = fake.requests
    assert request.authorized  # basic auth sid:token reached the fake and matched
    assert request.account_sid == fake.account_sid
    assert (request.to, request.from_, request.body) == (TO, FROM, BODY)
    # The callback names the notification and the child, so the receipt can be routed.
    assert request.status_callback == f"{CALLBACK}?n=K7Q2MD:t0:dsw-1:sms&c=C123"
    assert request.validity_period == "3600"
    assert request.message_sid is not None and re.fullmatch(r"SM[0-9a-f]{32}", request.message_sid)
    assert result.provider_message_id == request.message_sid


async def test_wrong_token_is_refused_and_permanent(fake: FakeTwilio) -> None:
    n = TwilioSmsNotifier(fake.account_sid, "not-the-token", FROM, base_url=fake.base_url)
    try:
        result = await n.send(sms())
    finally:
        await n.close()
    assert result.outcome is Outcome.PERMANENT
    assert result.error == "twilio 20003"
    assert not fake.requests[0].authorized


@pytest.mark.parametrize(
    ("reply", "outcome", "error"),
    [
        (Reply.server_error(), Outcome.RETRYABLE, "twilio http 500"),
        (Reply.error(503, None), Outcome.RETRYABLE, "twilio http 503"),
        (Reply.rate_limited(), Outcome.RETRYABLE, "twilio 20429"),
        (Reply.error(429, None), Outcome.RETRYABLE, "twilio http 429"),
        (Reply.error(400, 21211), Outcome.PERMANENT, "twilio 21211"),
        (Reply.error(400, 21610), Outcome.PERMANENT, "twilio 21610"),
        (Reply.error(400, 21614), Outcome.PERMANENT, "twilio 21614"),
        (Reply.error(400, 21408), Outcome.PERMANENT, "twilio 21408"),
        (Reply.error(400, 21602), Outcome.PERMANENT, "twilio 21602"),  # other 4xx
        (Reply.error(404, 20404), Outcome.PERMANENT, "twilio 20404"),
    ],
    ids=["500", "503", "20429", "429", "21211", "21610", "21614", "21408", "4xx", "404"],
)
async def test_provider_errors_map_to_outcomes(
    fake: FakeTwilio, notifier: TwilioSmsNotifier, reply: Reply, outcome: Outcome, error: str
) -> None:
    fake.respond_with(reply)
    result = await notifier.send(sms())
    assert (result.outcome, result.error, result.provider_message_id) == (outcome, error, None)


async def test_scripted_failures_then_recovery(
    fake: FakeTwilio, notifier: TwilioSmsNotifier
) -> None:
    fake.queue(Reply.server_error(), times=2)
    outcomes = [(await notifier.send(sms())).outcome for _ in range(3)]
    assert outcomes == [Outcome.RETRYABLE, Outcome.RETRYABLE, Outcome.DELIVERED]
    assert len(fake.requests) == 3


async def test_hang_is_bounded_by_the_notifier_timeout(fake: FakeTwilio) -> None:
    # AsyncTwilioHttpClient does not apply its own timeout; the notifier must.
    fake.respond_with(Reply.hang())
    n = notifier_for(fake, timeout_s=0.3)
    try:
        started = time.monotonic()
        result = await n.send(sms())
        elapsed = time.monotonic() - started
    finally:
        await n.close()
    assert (result.outcome, result.error) == (Outcome.RETRYABLE, "timeout")
    assert 0.25 <= elapsed < 2.0
    # The request reached the provider before the client gave up: the duplicate risk
    # that dispatch's idempotency has to live with.
    assert len(fake.requests) == 1
    fake.release()


async def test_released_hang_answers_and_later_hangs_hang_again(fake: FakeTwilio) -> None:
    fake.respond_with(Reply.hang())
    n = notifier_for(fake, timeout_s=3.0)
    try:
        pending = asyncio.create_task(n.send(sms()))
        await fake.wait_for_requests(1)
        fake.release()
        result = await asyncio.wait_for(pending, 2.0)
        assert result.outcome is Outcome.DELIVERED
        second = asyncio.create_task(n.send(sms()))
        await fake.wait_for_requests(2)
        assert fake.hanging == 1 and not second.done()  # the second request hangs again
        fake.release()
        assert (await asyncio.wait_for(second, 2.0)).outcome is Outcome.DELIVERED
    finally:
        await n.close()


async def test_connection_refused_is_retryable() -> None:
    n = TwilioSmsNotifier(
        "AC" + "0" * 32, "token", FROM, base_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        result = await n.send(sms())
    finally:
        await n.close()
    assert result.outcome is Outcome.RETRYABLE
    assert result.error is not None and result.error.startswith("connection error")


async def test_error_text_never_carries_token_body_or_number(fake: FakeTwilio) -> None:
    secret_body = "SECRET-BODY C123 last seen near the station"
    n = notifier_for(fake, timeout_s=0.3)
    errors = []
    try:
        for reply in (
            Reply.error(400, 21211, f"The 'To' number {TO} is not valid: {secret_body}"),
            Reply.server_error(),
            Reply.rate_limited(),
            Reply.hang(),
        ):
            fake.respond_with(reply)
            errors.append((await n.send(sms(body=secret_body))).error)
        fake.release()
    finally:
        await n.close()
    assert all(errors), errors
    for error in errors:
        assert error is not None
        assert fake.auth_token not in error
        assert "SECRET-BODY" not in error
        assert TO not in error
    assert fake.auth_token not in repr(n)


async def test_wrong_channel_is_permanent_without_a_request(
    fake: FakeTwilio, notifier: TwilioSmsNotifier
) -> None:
    email = sms().model_copy(update={"channel": Channel.EMAIL, "address": "dsw@example.org"})
    result = await notifier.send(email)
    assert result.outcome is Outcome.PERMANENT
    assert fake.requests == ()


# -- status callbacks ---------------------------------------------------------------------


@dataclass
class CallbackReceiver:
    """Validates callbacks exactly as the webhook endpoint will: RequestValidator on the URL."""

    auth_token: str
    url: str = ""
    received: list[tuple[dict[str, str], bool]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        # Twilio signs the full URL it was given, query string included.
        raw_query = request.rel_url.raw_query_string
        url = self.url + (f"?{raw_query}" if raw_query else "")
        valid = RequestValidator(self.auth_token).validate(url, params, signature)
        self.received.append((params, valid))
        return web.Response(status=204 if valid else 403)


@pytest.fixture
async def receiver(fake: FakeTwilio) -> AsyncIterator[CallbackReceiver]:
    recv = CallbackReceiver(fake.auth_token)
    app = web.Application()
    app.router.add_post("/v1/webhooks/twilio/status", recv.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}/v1/webhooks/twilio/status"
    yield recv
    await runner.cleanup()


async def test_signed_status_callbacks_validate(
    fake: FakeTwilio, receiver: CallbackReceiver
) -> None:
    n = notifier_for(fake, status_callback_url=receiver.url)
    try:
        result = await n.send(sms())
    finally:
        await n.close()
    [request] = fake.requests
    # Out of order on purpose: Twilio does not promise order.
    for status in ("delivered", "sent"):
        posted = await fake.post_status(request, status)
        assert posted.response_status == 204
    posted = await fake.post_status(request, "undelivered", error_code=30003)
    assert posted.response_status == 204

    params, valid = receiver.received[0]
    assert valid
    assert params["MessageSid"] == params["SmsSid"] == result.provider_message_id
    assert params["MessageStatus"] == "delivered"
    assert params["AccountSid"] == fake.account_sid
    assert (params["To"], params["From"]) == (TO, FROM)
    assert receiver.received[2][0]["ErrorCode"] == "30003"
    assert set(CALLBACK_STATUSES) == {"sent", "delivered", "undelivered", "failed"}


async def test_tampered_or_wrongly_keyed_callbacks_do_not_validate(
    fake: FakeTwilio, receiver: CallbackReceiver
) -> None:
    n = notifier_for(fake, status_callback_url=receiver.url)
    try:
        await n.send(sms())
    finally:
        await n.close()
    [request] = fake.requests

    posted = await fake.post_status(request, "failed", tamper={"MessageStatus": "delivered"})
    assert posted.response_status == 403
    assert receiver.received[-1] == (dict(posted.params), False)

    url, params, signature = fake.signed_callback(request, "delivered")
    assert RequestValidator(fake.auth_token).validate(url, params, signature)
    assert not RequestValidator("another-token").validate(url, params, signature)
    assert not RequestValidator(fake.auth_token).validate(url + "?x=1", params, signature)


async def test_thread_mode_serves_requests_and_posts_callbacks(receiver: CallbackReceiver) -> None:
    fake = FakeTwilio(auth_token=receiver.auth_token)
    base_url = fake.run_in_thread()
    try:
        n = TwilioSmsNotifier(
            fake.account_sid,
            fake.auth_token,
            FROM,
            base_url=base_url,
            status_callback_url=receiver.url,
        )
        fake.queue(Reply.error(500))
        try:
            first = await n.send(sms())
            second = await n.send(sms())
        finally:
            await n.close()
        assert (first.outcome, second.outcome) == (Outcome.RETRYABLE, Outcome.DELIVERED)
        requests = await asyncio.to_thread(fake.wait_for_requests_sync, 2, 2.0)
        # Blocking helper off the loop, so this loop can still serve the receiver.
        posted = await asyncio.to_thread(fake.post_status_sync, requests[1], "delivered")
        assert posted.response_status == 204
    finally:
        fake.stop_thread()


async def test_outage_and_restart_on_the_same_port(
    fake: FakeTwilio, notifier: TwilioSmsNotifier
) -> None:
    await fake.stop()
    down = await notifier.send(sms())
    assert down.outcome is Outcome.RETRYABLE
    assert down.error is not None and down.error.startswith("connection error")
    await fake.start()  # same port, so the notifier's base_url still points at it
    assert (await notifier.send(sms())).outcome is Outcome.DELIVERED
