"""Signed links in messages (acknowledge an episode; record its return home interview) and SMS
replies. Pure.

A link names the episode and the recipient and expires; it is an HMAC, so a forwarded message
lets nobody act in someone else's name after it expires, and nothing can be forged. The two
kinds of link cannot stand in for each other: an interview link's payload starts with "rhi",
which an acknowledgement link's never does (its first field is an episode code).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

_ACK = re.compile(r"^\s*ack(?:nowledged?)?[\s:.-]*([a-z0-9]{4,12})\s*[.!]?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LinkClaim:
    episode_code: str
    recipient_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_RHI = "rhi"


def _sign(secret: bytes, fields: tuple[str, ...]) -> str:
    payload = "|".join(fields).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def _verified(secret: bytes, token: str) -> list[str] | None:
    """The payload's fields if the MAC holds."""
    try:
        payload_b64, mac_b64 = token.split(".", 1)
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        want = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, want):
            return None
        return payload.decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return None


def _claim(fields: list[str], now: datetime) -> LinkClaim | None:
    try:
        code, recipient, expires = fields
        claim = LinkClaim(code, recipient, int(expires))
    except ValueError:
        return None
    return claim if claim.expires_at >= int(now.timestamp()) else None


def sign_link(secret: bytes, episode_code: str, recipient_id: str, expires_at: datetime) -> str:
    return _sign(secret, (episode_code, recipient_id, str(int(expires_at.timestamp()))))


def verify_link(secret: bytes, token: str, now: datetime) -> LinkClaim | None:
    fields = _verified(secret, token)
    return _claim(fields, now) if fields is not None else None


def sign_rhi_link(secret: bytes, episode_code: str, recipient_id: str, expires_at: datetime) -> str:
    expires = str(int(expires_at.timestamp()))
    return _sign(secret, (_RHI, episode_code, recipient_id, expires))


def verify_rhi_link(secret: bytes, token: str, now: datetime) -> LinkClaim | None:
    fields = _verified(secret, token)
    if fields is None or len(fields) != 4 or fields[0] != _RHI:
        return None
    return _claim(fields[1:], now)


def parse_sms_ack(text: str) -> str | None:
    """'ACK K7Q2MD', 'ack k7q2md', ' Ack: K7Q2MD. ' -> 'K7Q2MD'; anything else -> None."""
    match = _ACK.match(text or "")
    return match.group(1).upper() if match else None
