"""What each kind of episode record says: one model per action, so what the export, the
metrics and the logs read of a record is checked by mypy and a record written with a key
missing or of the wrong type fails where it is written, not in a statutory return months later.

The fields that something reads are declared; the rest of what the engine records for the
audit (tiers, reasons, reporter roles...) is kept as extra keys, never personal data
(docs/privacy.md). Instants are written as they always were (``isoformat()``), so records on
the topic before these models existed read the same.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

IsoInstant = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]
CategoryCode = Literal["M", "A"]


class Detail(BaseModel):
    """Any record's detail: the input event type that caused it, plus audit keys."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The detail as written on the topic (the keys the engine set, JSON values)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class OpenedDetail(Detail):
    last_seen_at: IsoInstant
    category_code: CategoryCode
    tier: str
    late: bool = False
    reason: str | None = Field(default=None, description="Why a late one was recorded.")


class ClosedDetail(Detail):
    returned_at: IsoInstant
    last_seen_at: IsoInstant
    category_code: CategoryCode
    how: Literal["returned", "found"]
    late: bool = False


class AmendedDetail(Detail):
    """The episode as it now stands after late or out-of-order information."""

    reason: str
    last_seen_at: IsoInstant
    returned_at: IsoInstant | None = None
    category_code: CategoryCode


class CategoryChangedDetail(Detail):
    from_: str = Field(alias="from")
    to: str
    category_code: CategoryCode


class TierChangedDetail(Detail):
    from_: str = Field(alias="from")
    to: str


class UpdatedDetail(Detail):
    """An update or a sighting of the open episode."""

    last_seen_at: IsoInstant | None = None
    last_seen_moved_earlier: bool = False


class StepFiredDetail(Detail):
    step_id: str
    alert_id: str
    kind: str
    due_at: IsoInstant | None = None


class AcknowledgedDetail(Detail):
    recipient_id: str
    first: bool


class ReturnInterviewDetail(Detail):
    offered_on: date
    accepted: bool | None = None
    first: bool


class ReturnHeldDetail(Detail):
    returned_at: IsoInstant


class CancelledDetail(Detail):
    """A false report withdrawn: the export drops the episode's period."""

    reason: str
    was_open: bool


class IgnoredDetail(Detail):
    reason: str


DETAIL_MODELS: Final[dict[str, type[Detail]]] = {
    "opened": OpenedDetail,
    "updated": UpdatedDetail,
    "sighting": UpdatedDetail,
    "category_changed": CategoryChangedDetail,
    "tier_changed": TierChangedDetail,
    "step_fired": StepFiredDetail,
    "acknowledged": AcknowledgedDetail,
    "closed": ClosedDetail,
    "return_interview_recorded": ReturnInterviewDetail,
    "amended": AmendedDetail,
    "return_held": ReturnHeldDetail,
    "cancelled": CancelledDetail,
    "ignored": IgnoredDetail,
}
