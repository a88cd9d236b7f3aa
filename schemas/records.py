"""Records the pipeline writes for people to audit: episode transitions and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, model_validator

from schemas.common import Envelope, EpisodeCode
from schemas.record_details import DETAIL_MODELS, Detail
from schemas.redaction import KeptPayload

RecordAction = Literal[
    "opened",
    "updated",
    "category_changed",
    "tier_changed",
    "sighting",
    "step_fired",
    "acknowledged",
    "closed",
    "return_interview_recorded",
    "amended",
    "return_held",
    "cancelled",
    "ignored",
]


class EpisodeRecord(Envelope):
    """One state transition of an episode: the audit trail and the source of the SSDA903 export.

    ``detail`` holds only non-personal values (tiers, step ids, codes, timestamps, role names),
    as the action's model (schemas/record_details.py): given as a dict, it is checked against
    that model, so a record missing what the export reads cannot be written.
    """

    type: Literal["episode_record"] = "episode_record"
    episode_code: EpisodeCode
    action: RecordAction
    detail: SerializeAsAny[Detail] = Field(default_factory=Detail)

    @model_validator(mode="before")
    @classmethod
    def _typed_detail(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("detail", {}), dict):
            model = DETAIL_MODELS.get(str(data.get("action")), Detail)
            return {**data, "detail": model.model_validate(data.get("detail", {}))}
        return data


class DeadLetter(Envelope):
    """An input that could not be processed, with the reason, so nothing is silently dropped."""

    type: Literal["dead_letter"] = "dead_letter"
    child_ref: str = Field(default="unknown", max_length=200)  # type: ignore[assignment]
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str = Field(description="Short machine-readable reason, e.g. 'invalid_event'.")
    errors: list[dict[str, str]] = Field(default_factory=list, description="Field path + message.")
    payload: str = Field(
        default="",
        description=(
            "The value as received with every value outside the schemas' non-personal fields "
            "replaced by '[redacted]'; empty when it was not a JSON object (docs/privacy.md)."
        ),
    )
    payload_bytes: int = Field(default=0, ge=0, description="Size of the value received.")
    payload_sha256: str = Field(default="", description="SHA-256 of the value received.")
    payload_redacted: bool = False

    @classmethod
    def of(
        cls,
        *,
        occurred_at: datetime,
        key: bytes | None,
        source_topic: str,
        partition: int | None,
        offset: int | None,
        reason: str,
        errors: list[dict[str, str]],
        payload: KeptPayload,
        child_ref: str | None = None,
    ) -> DeadLetter:
        """The dead letter for one record; ``child_ref`` defaults to the record key as text."""
        ref = child_ref or (key or b"")[:200].decode("utf-8", "replace") or "unknown"
        return cls(
            occurred_at=occurred_at,
            child_ref=ref[:200],
            source_topic=source_topic[:300],
            partition=partition,
            offset=offset,
            reason=reason,
            errors=[{k: v[:500] for k, v in e.items()} for e in errors[:50]],
            payload=payload.text,
            payload_bytes=payload.size,
            payload_sha256=payload.sha256,
            payload_redacted=payload.redacted,
        )
