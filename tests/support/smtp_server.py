"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for aiosmtplib tests.

It can be stopped and started again on the same port, so a test can stage a relay outage
and the recovery, and it can refuse chosen recipients with any reply (550 by default) to
exercise the permanent / transient split.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REJECT_550 = "550 5.1.1 Recipient address rejected: user unknown"


@dataclass(frozen=True)
class CapturedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    from_header: str
    to_header: str
    subject: str
    body: str
    message_id: str
    headers: tuple[tuple[str, str], ...]
    received_at: float  # time.time()


def _parse(envelope: Envelope) -> CapturedMessage:
    raw = envelope.original_content or envelope.content
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return CapturedMessage(
        mail_from=str(envelope.mail_from),
        rcpt_tos=tuple(envelope.rcpt_tos),
        from_header=str(msg.get("From", "")),
        to_header=str(msg.get("To", "")),
        subject=str(msg.get("Subject", "")),
        body=str(body).replace("\r\n", "\n"),  # SMTP line endings; the sender wrote "\n"
        message_id=str(msg.get("Message-ID", "")),
        headers=tuple((k, str(v)) for k, v in msg.items()),
        received_at=time.time(),
    )


class _Handler:
    def __init__(self, owner: SmtpTestServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.owner.rejection_for(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.owner._capture(_parse(envelope))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpTestServer:
    """Start/stop from sync or async code: aiosmtpd runs its own loop in a thread."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self._cond = threading.Condition()
        self._messages: list[CapturedMessage] = []
        self._rejections: dict[str, str] = {}
        self._controller: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on ``self.port`` (the same one after a stop, so clients need no new config)."""
        if self._controller is not None:
            return
        controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ------------------------------------------------------------------------

    def reject_recipient(self, address: str, reply: str = REJECT_550) -> None:
        with self._cond:
            self._rejections[address.lower()] = reply

    def accept_all(self) -> None:
        with self._cond:
            self._rejections.clear()

    def rejection_for(self, address: str) -> str | None:
        with self._cond:
            return self._rejections.get(address.lower())

    # -- observations ---------------------------------------------------------------------

    def _capture(self, message: CapturedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> tuple[CapturedMessage, ...]:
        with self._cond:
            return tuple(self._messages)

    def wait_for_messages_sync(self, count: int, within: float = 5.0) -> list[CapturedMessage]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._messages) >= count, within)
            found = list(self._messages)
        if not ok:
            raise AssertionError(f"expected {count} messages, got {len(found)}")
        return found

    async def wait_for_messages(self, count: int, within: float = 5.0) -> list[CapturedMessage]:
        deadline = time.monotonic() + within
        while len(found := self.messages) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(f"expected {count} messages, got {len(found)}")
            await asyncio.sleep(0.01)
        return list(found)
