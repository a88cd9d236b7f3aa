"""Turn a raw Kafka record into a validated input event, or a reason it was rejected. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from schemas.events import InputEvent, parse_input_event


@dataclass(frozen=True)
class Rejection:
    reason: str
    errors: list[dict[str, str]] = field(default_factory=list)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as (field path, message) pairs; the input value is never echoed."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def decode_input(
    key: bytes | None, value: bytes | None, *, now: datetime, skew_tolerance: timedelta
) -> InputEvent | Rejection:
    if not value:
        return Rejection("empty_value")
    try:
        event = parse_input_event(value)
    except ValidationError as exc:
        return Rejection("invalid_event", field_errors(exc))
    if key is None:
        return Rejection(
            "missing_key", [{"field": "(key)", "message": "records must be keyed by child_ref"}]
        )
    if key.decode("utf-8", "replace") != event.child_ref:
        return Rejection(
            "key_mismatch",
            [{"field": "child_ref", "message": "does not match the record key"}],
        )
    if event.occurred_at > now + skew_tolerance:
        return Rejection(
            "occurred_at_in_future",
            [
                {
                    "field": "occurred_at",
                    "message": "is later than now plus the clock-skew tolerance",
                }
            ],
        )
    return event
