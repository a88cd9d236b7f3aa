from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from schemas import AbsenceReported
from streams.kafka.decode import Rejection, decode_input

NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def body(**overrides: object) -> bytes:
    data: dict[str, object] = {
        "type": "absence",
        "child_ref": "C1",
        "occurred_at": NOW.isoformat(),
        "last_seen_at": (NOW - timedelta(hours=1)).isoformat(),
        "reporter": {"role": "carer"},
    }
    data.update(overrides)
    return json.dumps(data).encode()


def test_valid_event() -> None:
    assert isinstance(decode_input(b"C1", body(), now=NOW, skew_tolerance=SKEW), AbsenceReported)


def test_rejections_name_reason_and_field() -> None:
    cases = {
        "empty_value": (b"C1", b""),
        "invalid_event": (b"C1", b"{nope"),
        "missing_key": (None, body()),
        "key_mismatch": (b"C2", body()),
    }
    for reason, (key, value) in cases.items():
        out = decode_input(key, value, now=NOW, skew_tolerance=SKEW)
        assert isinstance(out, Rejection) and out.reason == reason, (reason, out)


def test_future_events_beyond_skew_are_rejected() -> None:
    later = NOW + timedelta(minutes=10)
    out = decode_input(b"C1", body(occurred_at=later.isoformat()), now=NOW, skew_tolerance=SKEW)
    assert isinstance(out, Rejection) and out.reason == "occurred_at_in_future"
    ok = decode_input(
        b"C1",
        body(occurred_at=(NOW + timedelta(minutes=4)).isoformat()),
        now=NOW,
        skew_tolerance=SKEW,
    )
    assert isinstance(ok, AbsenceReported)


def test_field_errors_do_not_echo_input_values() -> None:
    out = decode_input(
        b"C1", body(circumstances=123, last_seen_at="Jane's house"), now=NOW, skew_tolerance=SKEW
    )
    assert isinstance(out, Rejection)
    assert "Jane" not in json.dumps(out.errors)
    assert {"absence.last_seen_at", "absence.circumstances"} <= {e["field"] for e in out.errors}


def test_every_instant_not_only_occurred_at_is_checked_against_the_skew() -> None:
    later = (NOW + timedelta(hours=3)).isoformat()
    check_in = json.dumps(
        {
            "type": "check_in",
            "child_ref": "C1",
            "occurred_at": NOW.isoformat(),
            "seen_at": later,
            "reporter": {"role": "carer"},
        }
    ).encode()
    out = decode_input(b"C1", check_in, now=NOW, skew_tolerance=SKEW)
    assert isinstance(out, Rejection) and out.reason == "timestamp_in_future"
    assert out.errors[0]["field"] == "seen_at" and out.event_type == "check_in"


def test_a_rejection_knows_its_type_and_keeps_no_personal_value() -> None:
    out = decode_input(
        b"C1", body(circumstances="at Jane's house", last_seen_at="x"), now=NOW, skew_tolerance=SKEW
    )
    assert isinstance(out, Rejection) and out.event_type == "absence"
    assert out.payload is not None and "Jane" not in out.payload.text
    assert json.loads(out.payload.text)["circumstances"] == "[redacted]"


def test_hostile_nesting_is_a_clean_rejection() -> None:
    out = decode_input(b"C1", b"[" * 60_000, now=NOW, skew_tolerance=SKEW)
    assert isinstance(out, Rejection) and out.reason == "invalid_event"
    assert out.event_type is None and out.payload is not None and out.payload.text == ""
