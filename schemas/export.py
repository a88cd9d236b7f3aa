"""JSON Schema files for integrators, generated from the models so they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.alerts import Alert, DeliveryReceipt, Notification, RetryDue
from schemas.events import (
    AbsenceReported,
    Acknowledgement,
    CheckIn,
    ChildProfile,
    EpisodeUpdate,
    InputEvent,
    ReturnInterviewRecorded,
    ReturnReported,
    TimerDue,
)
from schemas.records import DeadLetter, EpisodeRecord

JSON_DIR = Path(__file__).parent / "json"

MODELS: dict[str, type[BaseModel]] = {
    "child-profile": ChildProfile,
    "check-in": CheckIn,
    "absence-reported": AbsenceReported,
    "return-reported": ReturnReported,
    "episode-update": EpisodeUpdate,
    "acknowledgement": Acknowledgement,
    "return-interview-recorded": ReturnInterviewRecorded,
    "timer-due": TimerDue,
    "alert": Alert,
    "notification": Notification,
    "delivery-receipt": DeliveryReceipt,
    "retry-due": RetryDue,
    "episode-record": EpisodeRecord,
    "dead-letter": DeadLetter,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text, deterministic (sorted keys, trailing newline)."""
    out: dict[str, str] = {}
    for name, model in MODELS.items():
        out[f"{name}.v1.json"] = _text(model.model_json_schema())
    union: dict[str, Any] = TypeAdapter(InputEvent).json_schema()
    union["title"] = "InputEvent"
    out["input-event.v1.json"] = _text(union)
    return out


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written
