"""One contract, every backend: what dispatch may assume of any notifier.

Each backend runs against its real counterpart (outbox file, Twilio fake, SMTP server) and is
checked by what that counterpart observed, not by what the notifier says it did.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.notifiers.base import Notifier, Outcome
from alerts.notifiers.outbox import OutboxNotifier
from alerts.notifiers.select import build_notifiers, close_notifiers, twilio_status_callback_url
from alerts.notifiers.smtp_email import SmtpEmailNotifier, message_id_for
from alerts.notifiers.twilio_sms import TwilioSmsNotifier
from config.settings import Settings
from schemas.alerts import Channel, Notification
from tests.support.fake_twilio import FakeTwilio
from tests.support.smtp_server import SmtpTestServer

pytestmark = [
    pytest.mark.integration,
    # twilio 9.13's async client still passes aiohttp's deprecated auth=BasicAuth(...).
    pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning:twilio.*"),
]

SENDER = "alerts@example.org"


def notification(channel: Channel) -> Notification:
    run = uuid.uuid4().hex[:8]
    address = "+447700900123" if channel is Channel.SMS else "dsw@example.org"
    return Notification(
        occurred_at=datetime.now(UTC),
        child_ref="C123",
        notification_id=f"K7Q2MD:t0:dsw-1:{channel}:{run}",
        alert_id="K7Q2MD:t0",
        episode_code="K7Q2MD",
        recipient_id="dsw-1",
        channel=channel,
        address=address,
        subject="MISSING C123" if channel is Channel.EMAIL else None,
        body=f"C123 missing, reply ACK K7Q2MD [{run}]",
    )


@dataclass
class Backend:
    notifier: Notifier
    channel: Channel
    observed: Callable[[Notification], int]  # how many times the backend saw it


@pytest.fixture(params=["outbox", "twilio", "smtp"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "outbox":
        path = tmp_path / "outbox.jsonl"

        def in_outbox(n: Notification) -> int:
            if not path.exists():
                return 0
            lines = path.read_text().splitlines()
            return sum(json.loads(line)["notification_id"] == n.notification_id for line in lines)

        yield Backend(OutboxNotifier(path), Channel.SMS, in_outbox)

    elif request.param == "twilio":
        async with FakeTwilio() as fake:
            sms = TwilioSmsNotifier(
                fake.account_sid, fake.auth_token, "+447700900001", base_url=fake.base_url
            )

            def at_twilio(n: Notification) -> int:
                return sum(r.body == n.body and r.to == n.address for r in fake.requests)

            try:
                yield Backend(sms, Channel.SMS, at_twilio)
            finally:
                await sms.close()

    else:
        with SmtpTestServer() as smtp:
            mail = SmtpEmailNotifier(smtp.host, smtp.port, starttls=False, sender=SENDER)

            def at_smtp(n: Notification) -> int:
                wanted = message_id_for(n.notification_id, SENDER)
                return sum(m.message_id == wanted for m in smtp.messages)

            yield Backend(mail, Channel.EMAIL, at_smtp)


async def test_valid_notification_is_delivered_and_seen_exactly_once(backend: Backend) -> None:
    n = notification(backend.channel)
    result = await backend.notifier.send(n)
    assert result.outcome is Outcome.DELIVERED
    assert result.error is None
    assert result.provider_message_id
    # Every backend records before it acknowledges, so no waiting is needed.
    assert backend.observed(n) == 1


async def test_distinct_notifications_are_each_seen_once(backend: Backend) -> None:
    first, second = notification(backend.channel), notification(backend.channel)
    results = [await backend.notifier.send(n) for n in (first, second)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.DELIVERED]
    assert (backend.observed(first), backend.observed(second)) == (1, 1)


async def test_has_a_name(backend: Backend) -> None:
    assert isinstance(backend.notifier.name, str) and backend.notifier.name


# -- selection: settings decide which backend each channel gets ---------------------------


def settings(tmp_path: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "_env_file": None,
        "data_dir": tmp_path / "var",
        "public_base_url": "http://127.0.0.1:6066/",
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def test_without_credentials_every_channel_uses_the_outbox(tmp_path: Path) -> None:
    notifiers = build_notifiers(settings(tmp_path))
    assert isinstance(notifiers[Channel.SMS], OutboxNotifier)
    assert notifiers[Channel.SMS] is notifiers[Channel.EMAIL]


async def test_configured_providers_are_built_and_reach_their_servers(tmp_path: Path) -> None:
    async with FakeTwilio() as fake:
        with SmtpTestServer() as smtp:
            notifiers = build_notifiers(
                settings(
                    tmp_path,
                    twilio_account_sid=fake.account_sid,
                    twilio_auth_token=fake.auth_token,
                    twilio_from_number="+447700900001",
                    twilio_base_url=fake.base_url,
                    smtp_host=smtp.host,
                    smtp_port=smtp.port,
                    smtp_starttls=False,
                    email_from=SENDER,
                )
            )
            try:
                sent = notification(Channel.SMS)
                sms_result = await notifiers[Channel.SMS].send(sent)
                mail_result = await notifiers[Channel.EMAIL].send(notification(Channel.EMAIL))
            finally:
                await close_notifiers(notifiers)
            assert (sms_result.outcome, mail_result.outcome) == (
                Outcome.DELIVERED,
                Outcome.DELIVERED,
            )
            [request] = fake.requests
            assert request.status_callback == (
                "http://127.0.0.1:6066/v1/webhooks/twilio/status"
                f"?n={sent.notification_id}&c={sent.child_ref}"
            )
            [message] = smtp.messages
            assert message.mail_from == SENDER


def test_only_the_configured_channel_leaves_the_outbox(tmp_path: Path) -> None:
    s = settings(tmp_path, smtp_host="127.0.0.1", smtp_port=2525)
    notifiers = build_notifiers(s)
    assert isinstance(notifiers[Channel.EMAIL], SmtpEmailNotifier)
    assert isinstance(notifiers[Channel.SMS], OutboxNotifier)
    assert twilio_status_callback_url(s) == "http://127.0.0.1:6066/v1/webhooks/twilio/status"
