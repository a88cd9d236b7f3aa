"""aiosmtplib against a real SMTP server on loopback: delivery, outage, recovery, refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from alerts.notifiers.base import Outcome
from alerts.notifiers.smtp_email import SmtpEmailNotifier, message_id_for
from schemas.alerts import Channel, Notification
from tests.support.smtp_server import SmtpTestServer

pytestmark = pytest.mark.integration

SENDER = "Missing Alerts <alerts@example.org>"
TO = "dsw@example.org"
SUBJECT = "MISSING C123 (high risk)"
BODY = "C123 (A.B.) missing since 14:05, high risk.\nReply ACK K7Q2MD. £ and Ø survive."


def email(
    notification_id: str = "K7Q2MD:t0:dsw-1:email", to: str = TO, body: str = BODY
) -> Notification:
    return Notification(
        occurred_at=datetime.now(UTC),
        child_ref="C123",
        notification_id=notification_id,
        alert_id="K7Q2MD:t0",
        episode_code="K7Q2MD",
        recipient_id="dsw-1",
        channel=Channel.EMAIL,
        address=to,
        subject=SUBJECT,
        body=body,
    )


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def notifier(smtp: SmtpTestServer) -> SmtpEmailNotifier:
    return SmtpEmailNotifier(smtp.host, smtp.port, starttls=False, sender=SENDER, timeout=2.0)


async def test_delivers_subject_body_and_stable_message_id(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    result = await notifier.send(email())

    expected_id = message_id_for("K7Q2MD:t0:dsw-1:email", SENDER)
    assert result.outcome is Outcome.DELIVERED
    assert result.provider_message_id == expected_id
    [message] = smtp.messages
    assert message.mail_from == "alerts@example.org"
    assert message.rcpt_tos == (TO,)
    assert (message.from_header, message.to_header) == (SENDER, TO)
    assert message.subject == SUBJECT
    assert message.body.rstrip("\n") == BODY
    assert message.message_id == expected_id
    assert "K7Q2MD" not in message.message_id  # hashed: no episode or person ids in headers
    assert ("Auto-Submitted", "auto-generated") in message.headers


async def test_message_id_is_the_same_on_retry_and_differs_per_notification(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    await notifier.send(email())
    await notifier.send(email())
    await notifier.send(email(notification_id="K7Q2MD:t0:tm-1:email"))
    ids = [m.message_id for m in smtp.messages]
    assert ids[0] == ids[1] != ids[2]


async def test_server_down_is_retryable_and_restart_delivers(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    smtp.stop()
    down = await notifier.send(email())
    assert down.outcome is Outcome.RETRYABLE
    assert down.error is not None and down.error.startswith("connection error")

    smtp.start()  # same port: the notifier needs no new configuration
    up = await notifier.send(email())
    assert up.outcome is Outcome.DELIVERED
    assert len(smtp.messages) == 1


async def test_rejected_recipient_550_is_permanent(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    smtp.reject_recipient(TO)
    result = await notifier.send(email())
    assert (result.outcome, result.error) == (Outcome.PERMANENT, "smtp 550 recipient refused")
    assert smtp.messages == ()


async def test_rejected_recipient_4xx_is_retryable(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    smtp.reject_recipient(TO, "450 4.2.1 Mailbox busy, try later")
    result = await notifier.send(email())
    assert (result.outcome, result.error) == (Outcome.RETRYABLE, "smtp 450 recipient refused")
    smtp.accept_all()
    assert (await notifier.send(email())).outcome is Outcome.DELIVERED


async def test_starttls_required_but_not_offered_is_retryable_not_plaintext(
    smtp: SmtpTestServer,
) -> None:
    n = SmtpEmailNotifier(smtp.host, smtp.port, starttls=True, sender=SENDER, timeout=2.0)
    result = await n.send(email())
    assert result.outcome is Outcome.RETRYABLE
    assert smtp.messages == ()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never sends a greeting: a hung relay."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_hung_server_times_out_retryable(silent_server: int) -> None:
    n = SmtpEmailNotifier("127.0.0.1", silent_server, starttls=False, sender=SENDER, timeout=0.3)
    started = time.monotonic()
    result = await n.send(email())
    assert (result.outcome, result.error) == (Outcome.RETRYABLE, "timeout")
    assert time.monotonic() - started < 2.0


async def test_errors_never_carry_password_body_or_address(smtp: SmtpTestServer) -> None:
    n = SmtpEmailNotifier(
        smtp.host, smtp.port, starttls=False, sender=SENDER, timeout=2.0, password="hunter2"
    )
    smtp.reject_recipient(TO, f"550 5.1.1 <{TO}> unknown")
    refused = await n.send(email(body="SECRET-BODY"))
    smtp.stop()
    down = await n.send(email(body="SECRET-BODY"))
    for result in (refused, down):
        assert result.error is not None
        for secret in ("hunter2", "SECRET-BODY", TO):
            assert secret not in result.error
    assert "hunter2" not in repr(n)


async def test_wrong_channel_is_permanent(
    smtp: SmtpTestServer, notifier: SmtpEmailNotifier
) -> None:
    sms = email().model_copy(update={"channel": Channel.SMS, "address": "+447700900123"})
    assert (await notifier.send(sms)).outcome is Outcome.PERMANENT
    assert smtp.messages == ()
