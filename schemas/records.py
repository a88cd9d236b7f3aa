"""Records the pipeline writes for people to audit: episode transitions and dead letters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.common import Envelope, EpisodeCode

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
    "ignored",
]


class EpisodeRecord(Envelope):
    """One state transition of an episode: the audit trail and the source of the SSDA903 export.

    ``detail`` holds only non-personal values (tiers, step ids, codes, timestamps, role names).
    """

    type: Literal["episode_record"] = "episode_record"
    episode_code: EpisodeCode
    action: RecordAction
    detail: dict[str, Any] = Field(default_factory=dict)


class DeadLetter(Envelope):
    """An input that could not be processed, with the reason, so nothing is silently dropped."""

    type: Literal["dead_letter"] = "dead_letter"
    child_ref: str = Field(default="unknown", max_length=200)  # type: ignore[assignment]
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str = Field(description="Short machine-readable reason, e.g. 'invalid_event'.")
    errors: list[dict[str, str]] = Field(default_factory=list, description="Field path + message.")
    payload: str = Field(description="The raw value as received (UTF-8, replaced if not).")
