from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas import AbsenceReported, Alert, ChildProfile, parse_input_event
from schemas.codec import CODEC_NAME, PydanticJSONCodec, register
from schemas.events import EpisodeUpdate, personal_field_names
from schemas.export import JSON_DIR, render_all

NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def absence(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "absence",
        "child_ref": "C123",
        "occurred_at": NOW.isoformat(),
        "last_seen_at": (NOW - timedelta(hours=1)).isoformat(),
        "reporter": {"role": "carer"},
    }
    body.update(overrides)
    return body


def test_discriminated_union_picks_the_model() -> None:
    event = parse_input_event(json.dumps(absence()).encode())
    assert isinstance(event, AbsenceReported)
    assert event.schema_version == 1
    assert event.event_id  # generated when the producer did not set one


def test_naive_timestamps_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ValidationError) as info:
        parse_input_event(absence(occurred_at="2026-11-28T22:00:00"))
    assert info.value.errors()[0]["loc"] == ("absence", "occurred_at")


def test_last_seen_after_report_is_rejected() -> None:
    with pytest.raises(ValidationError, match="last_seen_at must not be after occurred_at"):
        parse_input_event(absence(last_seen_at=(NOW + timedelta(minutes=1)).isoformat()))


def test_unknown_type_and_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_input_event({**absence(), "type": "teleport"})
    with pytest.raises(ValidationError):
        parse_input_event({**absence(), "surname": "Smith"})


def test_child_ref_alphabet_is_enforced() -> None:
    with pytest.raises(ValidationError):
        parse_input_event(absence(child_ref="C1 23/../x"))


def test_update_kind_requires_its_payload() -> None:
    base = {
        "type": "update",
        "child_ref": "C1",
        "occurred_at": NOW.isoformat(),
        "reporter": {"role": "carer"},
    }
    with pytest.raises(ValidationError, match="category is required"):
        parse_input_event({**base, "kind": "category"})
    event = parse_input_event({**base, "kind": "category", "category": "away"})
    assert isinstance(event, EpisodeUpdate)


def test_personal_fields_are_declared_for_redaction() -> None:
    names = personal_field_names()
    assert {"full_name", "address", "medical_notes", "circumstances", "note"} <= names
    assert "child_ref" not in names and "initials" not in names


def test_codec_round_trips_models() -> None:
    register()
    codec = PydanticJSONCodec()
    profile = ChildProfile(
        occurred_at=NOW,
        child_ref="C1",
        initials="AB",
        date_of_birth=datetime(2011, 5, 1).date(),
        local_authority="LA-EXAMPLE",
    )
    data = codec.dumps(profile)
    assert parse_input_event(data) == profile
    assert CODEC_NAME == "missing-alerts-json"


def test_alert_requires_channels() -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({"alert_id": "x"})


def test_committed_json_schemas_are_current() -> None:
    """Fails when a model changed without `make schemas` (integrators read these files)."""
    rendered = render_all()
    on_disk = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}
    stale = sorted(n for n in rendered.keys() | on_disk.keys() if rendered.get(n) != on_disk.get(n))
    assert not stale, f"schemas/json is stale, run `make schemas`: {stale}"


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00Z", "1899-12-31T23:59:59Z", "2200-01-01T00:00:00Z"]
)
def test_implausible_instants_are_refused_naming_the_field(when: str) -> None:
    """Finding 1 of issue #10: last_seen_at 0001-01-01 was accepted and later overflowed."""
    with pytest.raises(ValidationError) as info:
        parse_input_event(absence(last_seen_at=when))
    assert info.value.errors()[0]["loc"] == ("absence", "last_seen_at")


def test_instants_are_kept_in_utc_whatever_offset_they_came_with() -> None:
    event = parse_input_event(absence(last_seen_at="2026-11-28T22:30:00+01:00"))
    assert isinstance(event, AbsenceReported)
    assert event.last_seen_at == datetime(2026, 11, 28, 21, 30, tzinfo=UTC)
    assert event.last_seen_at.utcoffset() == timedelta(0)
    assert '"2026-11-28T21:30:00Z"' in event.model_dump_json()


def test_dates_and_lists_are_bounded() -> None:
    base = {
        "type": "profile",
        "child_ref": "C1",
        "occurred_at": NOW.isoformat(),
        "initials": "AB",
        "date_of_birth": "2011-01-01",
        "local_authority": "LA-EXAMPLE",
    }
    assert parse_input_event(base)
    for bad in ({"date_of_birth": "0001-01-01"}, {"places_frequented": ["x"] * 21}):
        with pytest.raises(ValidationError):
            parse_input_event({**base, **bad})


def test_child_references_may_name_their_authority() -> None:
    assert parse_input_event(absence(child_ref="10234@LA-OTHER")).child_ref == "10234@LA-OTHER"
    for bad in ("a@b@c", "@LA", "C1@"):
        with pytest.raises(ValidationError):
            parse_input_event(absence(child_ref=bad))
