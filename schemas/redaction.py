"""What of a rejected record may be kept on the dead-letter topic: its shape and its
non-personal values, never a name, an address or a medical note.

A record that fails validation is by definition one we cannot trust to have put personal data
only where the schema marks it, so the rule is an allow-list: keys that are non-personal fields
of some model on our topics keep their values; every other key keeps its name (the field
errors refer to it) with the value replaced. A value that is not a JSON object is not kept at
all, only its size and digest: a truncated profile is not JSON and still holds the name.
Parsing is depth-limited (pydantic-core stops at 200 levels with a ValueError), so hostile
nesting costs an error, never the process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import pydantic_core
from pydantic import BaseModel

from schemas.alerts import Alert, DeliveryReceipt, RetryDue
from schemas.common import Reporter
from schemas.events import (
    AbsenceReported,
    Acknowledgement,
    CheckIn,
    ChildProfile,
    EpisodeUpdate,
    ReturnInterviewRecorded,
    ReturnReported,
    TimerDue,
    personal_field_names,
)

REDACTED: Final = "[redacted]"
PAYLOAD_LIMIT: Final = 16_000

_MODELS: Final[tuple[type[BaseModel], ...]] = (
    ChildProfile,
    CheckIn,
    AbsenceReported,
    ReturnReported,
    EpisodeUpdate,
    Acknowledgement,
    ReturnInterviewRecorded,
    TimerDue,
    Alert,
    DeliveryReceipt,
    RetryDue,
    Reporter,
)


@cache
def kept_keys() -> frozenset[str]:
    names = {name for model in _MODELS for name in model.model_fields}
    return frozenset(names - personal_field_names())


@dataclass(frozen=True)
class KeptPayload:
    text: str  # redacted JSON, or "" when nothing could be kept
    size: int  # bytes received
    sha256: str  # of the bytes received, so an integrator can match it to what it sent
    redacted: bool  # something was removed


def _walk(value: Any, keep: frozenset[str]) -> tuple[Any, bool]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        removed = False
        for key, inner in value.items():
            if key in keep:
                out[key], sub = _walk(inner, keep)
                removed = removed or sub
            else:
                out[key] = REDACTED
                removed = True
        return out, removed
    if isinstance(value, list):
        items = [_walk(v, keep) for v in value]
        return [v for v, _ in items], any(r for _, r in items)
    return value, False


def parse_object(raw: bytes | None) -> dict[str, Any] | None:
    """The record as a JSON object, or None (not JSON, too deep, not an object)."""
    try:
        data = pydantic_core.from_json(raw or b"")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def keep_payload(raw: bytes | None, *, parsed: dict[str, Any] | None = None) -> KeptPayload:
    body = raw or b""
    digest = hashlib.sha256(body).hexdigest()
    data = parsed if parsed is not None else parse_object(body)
    if data is None:
        return KeptPayload("", len(body), digest, redacted=bool(body))
    kept, removed = _walk(data, kept_keys())
    text = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
    if len(text) > PAYLOAD_LIMIT:
        return KeptPayload("", len(body), digest, redacted=True)
    return KeptPayload(text, len(body), digest, redacted=removed)
