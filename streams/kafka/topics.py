"""Every topic and table: name, partition count, config and codec, declared once.

The events topic, the timer's due topic and the episodes table share one partition count and
one key (child_ref), so all of a child's inputs and state live on the same partition. The Faust
tables are declared here too (``TABLES``): the engine, which does not run Faust, writes one of
them straight to its changelog, so the changelog's name is part of the engine <-> worker
contract and must not be rebuilt anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import TypeAdapter

from alerts.delivery_log import DELIVERY_CODEC
from config.settings import Settings
from schemas.alerts import DISPATCH_INPUT_ADAPTER, Alert
from schemas.events import INPUT_EVENT_ADAPTER
from schemas.records import DeadLetter, EpisodeRecord
from schemas.wire import Codec, JsonCodec, RawCodec
from streams.episodes.codec import STATE_CODEC

INPUT_CODEC: Final = JsonCodec(INPUT_EVENT_ADAPTER)
DISPATCH_CODEC: Final = JsonCodec(DISPATCH_INPUT_ADAPTER)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    codec: Codec[Any]


@dataclass(frozen=True)
class TableSpec:
    """A Faust table: its name, and the changelog topic Faust gives it (``<app>-<name>-
    changelog``)."""

    name: str
    global_: bool
    codec: Codec[Any]

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"


TABLES: Final = {
    # The notification log, keyed by notification id, partitioned like the child's alerts.
    "deliveries": TableSpec("deliveries", global_=False, codec=DELIVERY_CODEC),
    # Episode code -> child reference on every worker: SMS replies, links and the API name
    # episodes by code, while everything else is keyed (and partitioned) by child. Written by
    # the engine straight to its changelog.
    "episode_codes": TableSpec("episode-codes", global_=True, codec=RawCodec()),
    # Episode code -> the duty desk's summary of it (streams/episodes/views.py), on every
    # worker: the episode list answers from memory. Written by the engine to its changelog.
    "episode_views": TableSpec("episode-views", global_=True, codec=RawCodec()),
    # Episode code -> who was messaged and when it closed (alerts/notified.py).
    "notified": TableSpec("episode-notified", global_=True, codec=RawCodec()),
    # Episode code -> each message's step, person, role, channel and status, without addresses
    # (alerts/notification_views.py): the duty desk's "who was told". Written by dispatch.
    "episode_notifications": TableSpec("episode-notifications", global_=True, codec=RawCodec()),
}


def topic_specs(settings: Settings) -> dict[str, TopicSpec]:
    n = settings.topic_partitions
    week = {"retention.ms": str(7 * 24 * 3600 * 1000)}
    year = {"retention.ms": str(400 * 24 * 3600 * 1000)}
    compact = {"cleanup.policy": "compact"}
    return {
        # Inputs from carers' apps, the API and the case system, keyed by child_ref.
        "events": TopicSpec(settings.topic("events"), n, week, INPUT_CODEC),
        # Timer "due" events, co-partitioned with events.
        "due": TopicSpec(settings.topic("due"), n, week, INPUT_CODEC),
        # Latest profile per child (compacted), produced by the case system.
        "profiles": TopicSpec(settings.topic("profiles"), n, compact, INPUT_CODEC),
        # Engine decisions, consumed by dispatch.
        "alerts": TopicSpec(settings.topic("alerts"), n, week, JsonCodec(TypeAdapter(Alert))),
        # Audit trail and source of the SSDA903 export: kept long.
        "episode_events": TopicSpec(
            settings.topic("episode-events"), n, year, JsonCodec(TypeAdapter(EpisodeRecord))
        ),
        # Delivery receipts from Twilio status callbacks, keyed by child like the alerts.
        "receipts": TopicSpec(settings.topic("receipts"), n, week, DISPATCH_CODEC),
        # Dispatch's own "retry now" / "retention due" events, co-partitioned with alerts.
        "dispatch_retries": TopicSpec(settings.topic("dispatch-retries"), n, week, DISPATCH_CODEC),
        # Whatever could not be processed, with the reason.
        "dead_letters": TopicSpec(
            settings.topic("dead-letters"), 1, year, JsonCodec(TypeAdapter(DeadLetter))
        ),
        # The engine's state per child (compacted): the source of truth its local store is a
        # copy of, co-partitioned with events (streams/engine/loop.py).
        "episodes_changelog": TopicSpec(
            f"{settings.app_id}-episodes-changelog", n, compact, STATE_CODEC
        ),
        # The episode-code table's changelog, which the engine writes directly.
        "codes_changelog": TopicSpec(
            TABLES["episode_codes"].changelog(settings.app_id), n, compact, RawCodec()
        ),
        "views_changelog": TopicSpec(
            TABLES["episode_views"].changelog(settings.app_id), n, compact, RawCodec()
        ),
    }
