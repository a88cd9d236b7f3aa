from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.ack_links import parse_sms_ack, sign_link, verify_link

NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
KEY = b"k"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ACK K7Q2MD", "K7Q2MD"),
        ("  ack k7q2md ", "K7Q2MD"),
        ("Ack: K7Q2MD.", "K7Q2MD"),
        ("acknowledged K7Q2MD", "K7Q2MD"),
        ("K7Q2MD", None),
        ("ack", None),
        ("ok thanks", None),
        ("ACK K7Q2MD and more", None),
    ],
)
def test_sms_reply_parsing(text: str, code: str | None) -> None:
    assert parse_sms_ack(text) == code


def test_link_round_trip_expiry_and_tampering() -> None:
    token = sign_link(KEY, "K7Q2MD", "pl-1", NOW + timedelta(hours=1))
    claim = verify_link(KEY, token, NOW)
    assert claim is not None and (claim.episode_code, claim.recipient_id) == ("K7Q2MD", "pl-1")
    assert verify_link(KEY, token, NOW + timedelta(hours=2)) is None  # expired
    assert verify_link(b"other", token, NOW) is None  # wrong secret
    payload, mac = token.split(".")
    forged = sign_link(KEY, "K7Q2MD", "tm-1", NOW + timedelta(hours=1)).split(".")[0]
    assert verify_link(KEY, f"{forged}.{mac}", NOW) is None  # someone else's name
    assert verify_link(KEY, "garbage", NOW) is None and verify_link(KEY, payload, NOW) is None
