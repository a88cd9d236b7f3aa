"""Signed one-click acknowledgement links and SMS replies. Pure.

A link names the episode and the recipient and expires; it is an HMAC, so a forwarded message
lets nobody acknowledge in someone else's name after it expires, and nothing can be forged.
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


def sign_link(secret: bytes, episode_code: str, recipient_id: str, expires_at: datetime) -> str:
    payload = f"{episode_code}|{recipient_id}|{int(expires_at.timestamp())}".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify_link(secret: bytes, token: str, now: datetime) -> LinkClaim | None:
    try:
        payload_b64, mac_b64 = token.split(".", 1)
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        want = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, want):
            return None
        code, recipient, expires = payload.decode().split("|")
        claim = LinkClaim(code, recipient, int(expires))
    except (ValueError, UnicodeDecodeError):
        return None
    return claim if claim.expires_at >= int(now.timestamp()) else None


def parse_sms_ack(text: str) -> str | None:
    """'ACK K7Q2MD', 'ack k7q2md', ' Ack: K7Q2MD. ' -> 'K7Q2MD'; anything else -> None."""
    match = _ACK.match(text or "")
    return match.group(1).upper() if match else None
