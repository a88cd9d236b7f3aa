"""Pick a notifier per channel from the settings: real providers when configured, else outbox.

Channels are decided independently, so a deployment with SMTP but no Twilio account still
sends real email and keeps its SMS in the outbox file rather than dropping them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alerts.notifiers.base import Notifier
from alerts.notifiers.outbox import OutboxNotifier
from alerts.notifiers.smtp_email import SmtpEmailNotifier
from alerts.notifiers.twilio_sms import TwilioSmsNotifier
from config.settings import Settings
from schemas.alerts import Channel

# Must match the route the web layer serves: Twilio signs the exact URL it was given.
TWILIO_STATUS_PATH = "/v1/webhooks/twilio/status"


@runtime_checkable
class _Closable(Protocol):
    async def close(self) -> None: ...


def twilio_status_callback_url(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + TWILIO_STATUS_PATH


def build_notifiers(settings: Settings) -> dict[Channel, Notifier]:
    outbox = OutboxNotifier(settings.resolved_outbox_path)
    notifiers: dict[Channel, Notifier] = {Channel.SMS: outbox, Channel.EMAIL: outbox}
    sid, token, from_number = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_from_number,
    )
    if sid and token and from_number:  # settings validation rejects a partial set
        notifiers[Channel.SMS] = TwilioSmsNotifier(
            account_sid=sid,
            auth_token=token.get_secret_value(),
            from_number=from_number,
            base_url=settings.twilio_base_url,
            status_callback_url=twilio_status_callback_url(settings),
            timeout_s=settings.sms_timeout_s,
        )
    if settings.smtp_host:
        notifiers[Channel.EMAIL] = SmtpEmailNotifier(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            sender=settings.email_from,
        )
    return notifiers


async def close_notifiers(notifiers: dict[Channel, Notifier]) -> None:
    """Release provider connections at shutdown; notifiers without a close() are skipped."""
    seen: set[int] = set()
    for notifier in notifiers.values():
        if id(notifier) in seen:
            continue
        seen.add(id(notifier))
        if isinstance(notifier, _Closable):
            await notifier.close()
