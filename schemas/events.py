"""Input events: what carers' apps, the case system and the engine's own timer put on Kafka.

All of them travel on the events topic keyed by ``child_ref``; ``type`` discriminates them so one
topic keeps every event of a child in order on one partition.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field, TypeAdapter, model_validator
from pydantic.config import JsonDict

from schemas.common import (
    CancelReason,
    Category,
    Day,
    Envelope,
    EpisodeCode,
    Instant,
    Reporter,
    RiskFlag,
    ShortText,
)

_PERSONAL: Final[JsonDict] = {"x-personal": True}


class ChildProfile(Envelope):
    """Prepared in advance (Philomena protocol) so a report can be escalated without questions.

    Fields marked ``x-personal`` are special-category data: they may reach email bodies when
    configured, never SMS, logs or metric labels.
    """

    type: Literal["profile"] = "profile"
    initials: str = Field(pattern=r"^[A-Z]{1,4}$", examples=["JD"])
    date_of_birth: Day = Field(json_schema_extra=_PERSONAL)
    local_authority: str = Field(min_length=1, max_length=64, examples=["LA-EXAMPLE"])
    placement_ref: str | None = Field(default=None, max_length=64)
    allocated_social_worker: str | None = Field(
        default=None, max_length=64, description="Rota person id of the allocated worker."
    )
    police_force: str | None = Field(default=None, max_length=64, examples=["FORCE-EXAMPLE"])
    risk_flags: frozenset[RiskFlag] = frozenset()
    full_name: str | None = Field(default=None, max_length=200, json_schema_extra=_PERSONAL)
    address: str | None = Field(default=None, max_length=500, json_schema_extra=_PERSONAL)
    places_frequented: tuple[Annotated[str, Field(max_length=200)], ...] = Field(
        default=(), max_length=20, json_schema_extra=_PERSONAL
    )
    medical_notes: str | None = Field(default=None, max_length=2000, json_schema_extra=_PERSONAL)
    description: str | None = Field(default=None, max_length=2000, json_schema_extra=_PERSONAL)


class CheckIn(Envelope):
    """A routine 'child seen / present'. Keeps last-seen current; during an episode, a sighting."""

    type: Literal["check_in"] = "check_in"
    seen_at: Instant
    reporter: Reporter
    present_at_placement: bool = True


class AbsenceReported(Envelope):
    type: Literal["absence"] = "absence"
    last_seen_at: Instant = Field(
        description="Escalation clocks run from here, not from the report."
    )
    category: Category = Category.MISSING
    reporter: Reporter
    reported_flags: frozenset[RiskFlag] = Field(
        default=frozenset(), description="Concerns raised by this report on top of the profile."
    )
    immediate_danger: bool = False
    circumstances: ShortText | None = Field(default=None, json_schema_extra=_PERSONAL)

    @model_validator(mode="after")
    def _seen_before_report(self) -> AbsenceReported:
        if self.last_seen_at > self.occurred_at:
            raise ValueError("last_seen_at must not be after occurred_at")
        return self


class ReturnReported(Envelope):
    type: Literal["return"] = "return"
    returned_at: Instant
    how: Literal["returned", "found"] = "returned"
    reporter: Reporter
    episode_code: EpisodeCode | None = None


class EpisodeUpdate(Envelope):
    """New information on an open episode: a sighting, a category change, new risk flags."""

    type: Literal["update"] = "update"
    episode_code: EpisodeCode | None = None
    kind: Literal["sighting", "information", "category", "risk"]
    category: Category | None = None
    added_flags: frozenset[RiskFlag] = frozenset()
    immediate_danger: bool = False
    reporter: Reporter
    note: ShortText | None = Field(default=None, json_schema_extra=_PERSONAL)

    @model_validator(mode="after")
    def _kind_has_payload(self) -> EpisodeUpdate:
        if self.kind == "category" and self.category is None:
            raise ValueError("category is required when kind is 'category'")
        if self.kind == "risk" and not (self.added_flags or self.immediate_danger):
            raise ValueError("added_flags or immediate_danger is required when kind is 'risk'")
        return self


class Acknowledgement(Envelope):
    type: Literal["acknowledgement"] = "acknowledgement"
    episode_code: EpisodeCode
    recipient_id: str = Field(min_length=1, max_length=64, description="Rota person id.")
    via: Literal["api", "sms", "link"]
    basis: Literal["notified", "named_responder"] = Field(
        default="notified",
        description=(
            "Why this person may acknowledge: they were sent a message for the episode, or "
            "they are the named responder of the API key that acknowledged."
        ),
    )
    api_key_id: str | None = Field(default=None, max_length=64, description="API key used.")


class ReturnInterviewRecorded(Envelope):
    type: Literal["return_interview"] = "return_interview"
    episode_code: EpisodeCode
    offered_on: Day
    accepted: bool | None = None


class ReportCancelled(Envelope):
    """A false report withdrawn by the duty team (issue 14): the child was never missing, the
    report repeated another, or named the wrong child. The episode stops, everyone already
    told is told, and it leaves no SSDA903 period. The reason is a code, so audit records and
    messages carry no free text; ``note`` is personal and goes nowhere but the event."""

    type: Literal["cancellation"] = "cancellation"
    episode_code: EpisodeCode
    reason: CancelReason
    note: ShortText | None = Field(default=None, json_schema_extra=_PERSONAL)
    reporter: Reporter
    api_key_id: str | None = Field(default=None, max_length=64, description="API key used.")


class HistoricEpisode(Envelope):
    """A closed episode from before the council used this system (``missing-alerts import
    ssda903``): recorded as history at its own dates, never alerted on, counted by the
    repeat-episode rule. Dates are Europe/London calendar dates, as the return has them."""

    type: Literal["historic_episode"] = "historic_episode"
    category: Category
    started_on: Day
    ended_on: Day
    date_of_birth: Day | None = Field(default=None, json_schema_extra=_PERSONAL)
    source_row: int | None = Field(default=None, ge=1, description="Row of the imported file.")

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> HistoricEpisode:
        if self.ended_on < self.started_on:
            raise ValueError("ended_on is before started_on")
        return self


class TimerDue(Envelope):
    """Emitted by the engine's own timer; applying it twice is harmless by design."""

    type: Literal["timer_due"] = "timer_due"
    episode_code: EpisodeCode
    due_at: Instant


InputEvent = Annotated[
    ChildProfile
    | CheckIn
    | AbsenceReported
    | ReturnReported
    | EpisodeUpdate
    | Acknowledgement
    | ReturnInterviewRecorded
    | ReportCancelled
    | HistoricEpisode
    | TimerDue,
    Field(discriminator="type"),
]

INPUT_EVENT_ADAPTER: TypeAdapter[InputEvent] = TypeAdapter(InputEvent)


def parse_input_event(raw: bytes | str | dict[str, Any]) -> InputEvent:
    """Validate one event from the wire; raises pydantic.ValidationError naming the field."""
    if isinstance(raw, dict):
        return INPUT_EVENT_ADAPTER.validate_python(raw)
    return INPUT_EVENT_ADAPTER.validate_json(raw)


_INPUT_MODELS: Final = (
    ChildProfile,
    CheckIn,
    AbsenceReported,
    ReturnReported,
    EpisodeUpdate,
    Acknowledgement,
    ReturnInterviewRecorded,
    ReportCancelled,
    HistoricEpisode,
    TimerDue,
)


def personal_field_names() -> frozenset[str]:
    """Every field marked personal in any input model, for the log redaction processor."""
    names: set[str] = set()
    for model in _INPUT_MODELS:
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("x-personal"):
                names.add(name)
    return frozenset(names)


INPUT_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    str(model.model_fields["type"].default) for model in _INPUT_MODELS
)
