"""Versioned pydantic models of everything that crosses a topic or an HTTP body.

Integrators get the same contracts as JSON Schema under ``schemas/json`` (``python -m schemas
export``). Models here are data only: no I/O, no Faust.
"""

from schemas.alerts import Alert, AlertKind, Channel, DeliveryReceipt, DeliveryStatus, Notification
from schemas.common import SCHEMA_VERSION, Category, RiskFlag, Tier
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
    parse_input_event,
)
from schemas.records import DeadLetter, EpisodeRecord

__all__ = [
    "SCHEMA_VERSION",
    "AbsenceReported",
    "Acknowledgement",
    "Alert",
    "AlertKind",
    "Category",
    "Channel",
    "CheckIn",
    "ChildProfile",
    "DeadLetter",
    "DeliveryReceipt",
    "DeliveryStatus",
    "EpisodeRecord",
    "EpisodeUpdate",
    "InputEvent",
    "Notification",
    "ReturnInterviewRecorded",
    "ReturnReported",
    "RiskFlag",
    "Tier",
    "TimerDue",
    "parse_input_event",
]
