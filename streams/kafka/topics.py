"""Every topic, its partition count and its config, declared once.

The events topic, the timer's due topic and the episodes table share one partition count and
one key (child_ref), so all of a child's inputs and state live on the same partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> dict[str, TopicSpec]:
    n = settings.topic_partitions
    week = str(7 * 24 * 3600 * 1000)
    year = str(400 * 24 * 3600 * 1000)
    app = settings.app_id
    compact = {"cleanup.policy": "compact"}
    specs = {
        # Inputs from carers' apps, the API and the case system, keyed by child_ref.
        "events": TopicSpec(settings.topic("events"), n, {"retention.ms": week}),
        # Timer "due" events, co-partitioned with events.
        "due": TopicSpec(settings.topic("due"), n, {"retention.ms": week}),
        # Latest profile per child (compacted), produced by the case system.
        "profiles": TopicSpec(settings.topic("profiles"), n, {"cleanup.policy": "compact"}),
        # Engine decisions, consumed by dispatch.
        "alerts": TopicSpec(settings.topic("alerts"), n, {"retention.ms": week}),
        # Audit trail and source of the SSDA903 export: kept long.
        "episode_events": TopicSpec(settings.topic("episode-events"), n, {"retention.ms": year}),
        # Delivery receipts from Twilio status callbacks, keyed by child like the alerts.
        "receipts": TopicSpec(settings.topic("receipts"), n, {"retention.ms": week}),
        # Dispatch's own "retry now" events, co-partitioned with alerts and receipts.
        "dispatch_retries": TopicSpec(
            settings.topic("dispatch-retries"), n, {"retention.ms": week}
        ),
        # Whatever could not be processed, with the reason.
        "dead_letters": TopicSpec(settings.topic("dead-letters"), 1, {"retention.ms": year}),
        # The engine's state per child (compacted): the source of truth its local store is a
        # copy of, co-partitioned with events (streams/engine/loop.py).
        "episodes_changelog": TopicSpec(f"{app}-episodes-changelog", n, compact),
        # Changelog of the Faust GlobalTable the engine writes directly: episode code -> child,
        # read by every worker's API.
        "codes_changelog": TopicSpec(f"{app}-episode-codes-changelog", n, compact),
    }
    return specs


def faust_topic_kwargs(spec: TopicSpec) -> dict[str, Any]:
    return {"partitions": spec.partitions, "config": spec.config}
