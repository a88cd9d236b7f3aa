"""Turn a raw Kafka record into a validated input event, or a reason it was rejected. Pure.

A rejection carries everything later stages need (the event type for the metric label, the
redacted payload for the dead letter), so nothing downstream parses a rejected record again:
a record of 60,000 ``[`` once passed validation's depth limit as a clean rejection and then
crashed the engine in a metrics helper that re-parsed it with ``json.loads``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, get_args

from pydantic import AwareDatetime, BaseModel, ValidationError

from schemas.events import INPUT_EVENT_TYPES, InputEvent, parse_input_event
from schemas.redaction import KeptPayload, keep_payload, parse_object


@dataclass(frozen=True)
class Rejection:
    reason: str
    errors: list[dict[str, str]] = field(default_factory=list)
    # The record's ``type`` when it names a known one (bounded: a metric label), else None.
    event_type: str | None = None
    payload: KeptPayload | None = None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as (field path, message) pairs; the input value is never echoed."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def future_fields(
    model: BaseModel, *, now: datetime, skew_tolerance: timedelta
) -> list[dict[str, str]]:
    """Every top-level instant later than now plus the skew tolerance, as field errors: the
    schemas bound instants statically (1900-2200); this is the bound that needs a clock."""
    limit = now + skew_tolerance
    return [
        {"field": name, "message": "is later than now plus the clock-skew tolerance"}
        for name, value in _instants(model)
        if value > limit
    ]


def _instants(model: BaseModel) -> Iterator[tuple[str, datetime]]:
    for name in _instant_fields(type(model)):
        value = getattr(model, name)
        if value is not None:
            yield name, value


@cache
def _instant_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The model's datetime fields, worked out once per model (this runs for every event)."""
    return tuple(name for name, info in model.model_fields.items() if _is_instant(info.annotation))


def _is_instant(annotation: Any) -> bool:
    if annotation is AwareDatetime or (
        isinstance(annotation, type) and issubclass(annotation, datetime)
    ):
        return True
    return any(_is_instant(arg) for arg in get_args(annotation))  # Optional[...] and the like


def reject(reason: str, value: bytes | None, errors: list[dict[str, str]]) -> Rejection:
    """A rejection of a record whose value was not (or not safely) parsed yet."""
    parsed = parse_object(value)
    kind = parsed.get("type") if parsed is not None else None
    return Rejection(
        reason,
        errors,
        event_type=kind if isinstance(kind, str) and kind in INPUT_EVENT_TYPES else None,
        payload=keep_payload(value, parsed=parsed),
    )


def decode_input(
    key: bytes | None, value: bytes | None, *, now: datetime, skew_tolerance: timedelta
) -> InputEvent | Rejection:
    if not value:
        return reject("empty_value", value, [])
    try:
        event = parse_input_event(value)
    except ValidationError as exc:
        return reject("invalid_event", value, field_errors(exc))
    if key is None:
        return _rejected_event(
            "missing_key",
            event,
            value,
            [{"field": "(key)", "message": "records must be keyed by child_ref"}],
        )
    if key.decode("utf-8", "replace") != event.child_ref:
        return _rejected_event(
            "key_mismatch",
            event,
            value,
            [{"field": "child_ref", "message": "does not match the record key"}],
        )
    late = future_fields(event, now=now, skew_tolerance=skew_tolerance)
    if late:
        first = late[0]["field"]
        reason = "occurred_at_in_future" if first == "occurred_at" else "timestamp_in_future"
        return _rejected_event(reason, event, value, late)
    return event


def _rejected_event(
    reason: str, event: InputEvent, value: bytes, errors: list[dict[str, str]]
) -> Rejection:
    """A valid event refused for a reason outside the schema: its type is known already."""
    return Rejection(reason, errors, event_type=event.type, payload=keep_payload(value))
