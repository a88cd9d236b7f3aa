"""Email through an SMTP relay with aiosmtplib: one connection per message.

A connection per message costs a handshake but never leaves a dead pooled connection behind
after a relay restart, and alert volume is small. The Message-ID is derived from the
notification id, so when dispatch retries after a lost reply the receiving side sees the same
Message-ID and can drop the copy.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from alerts.notifiers.base import Outcome, SendResult
from schemas.alerts import Channel, Notification


def message_id_for(notification_id: str, sender: str) -> str:
    """Stable Message-ID; hashed so episode codes and person ids stay out of mail headers."""
    digest = hashlib.sha256(notification_id.encode("utf-8")).hexdigest()[:40]
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2] or "missing-alerts.invalid"
    return f"<{digest}@{domain}>"


def classify_smtp_code(code: int) -> Outcome:
    """RFC 5321: 4xx is transient, 5xx is final. Public so docs and tests share one rule."""
    return Outcome.PERMANENT if code >= 500 else Outcome.RETRYABLE


class SmtpEmailNotifier:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        sender: str = "missing-alerts@example.org",
        timeout: float = 10.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.sender = sender
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpEmailNotifier(host={self.host!r}, port={self.port!r})"

    def build_message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notification.address
        message["Subject"] = notification.subject or f"missing-alerts {notification.episode_code}"
        message["Message-ID"] = message_id_for(notification.notification_id, self.sender)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        # RFC 3834: keeps out-of-office replies from bouncing back to the sender.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(notification.body)
        return message

    async def send(self, notification: Notification) -> SendResult:
        if notification.channel is not Channel.EMAIL:
            return SendResult(
                Outcome.PERMANENT, error=f"not an email notification: {notification.channel}"
            )
        message = self.build_message(notification)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                use_tls=False,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        # Server text is left out of every error: it often echoes the recipient address.
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients] or [550]
            outcome = classify_smtp_code(min(codes))
            return SendResult(outcome, error=f"smtp {min(codes)} recipient refused")
        except aiosmtplib.SMTPResponseException as exc:
            return SendResult(classify_smtp_code(exc.code), error=f"smtp {exc.code}")
        except TimeoutError:  # SMTPTimeoutError and asyncio's; before OSError, its base
            return SendResult(Outcome.RETRYABLE, error="timeout")
        except OSError as exc:
            # Refused or dropped: SMTPConnectError and SMTPServerDisconnected are OSErrors too.
            return SendResult(Outcome.RETRYABLE, error=f"connection error ({type(exc).__name__})")
        except aiosmtplib.SMTPNotSupported:
            # SMTPUTF8 needed for this address and not offered: the same on every attempt.
            return SendResult(Outcome.PERMANENT, error="smtp extension not supported")
        except aiosmtplib.SMTPException as exc:
            # Includes STARTTLS configured but not offered. Never fall back to plain text (that
            # is what a STARTTLS-stripping attacker wants); a relay whose TLS broke may recover.
            return SendResult(Outcome.RETRYABLE, error=f"smtp error ({type(exc).__name__})")
        return SendResult(Outcome.DELIVERED, provider_message_id=str(message["Message-ID"]))
