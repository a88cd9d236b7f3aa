"""The engine's consumer group: co-partitioned assignment, and who owns which partition.

Range assignment over topics with one partition count gives partition p of the events, due and
profiles topics to the same member, which is what keeps a child's inputs and state together.
On top of it every member learns the whole map partition -> owner's web URL in the same
assignment (the leader writes it into each member's user data), so any worker can forward
``GET /v1/episodes/{code}`` to the worker holding that child's state: the map changes exactly
when the assignment does, with no second source of truth to go stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from config.settings import Settings


def engine_group_id(settings: Settings) -> str:
    """The engine's consumer group; dispatch (Faust) keeps the app id itself."""
    return f"{settings.app_id}-engine"


def owners_from(
    assignments: Mapping[str, ConsumerProtocolMemberAssignment],
    urls: Mapping[str, str],
    topic: str,
) -> dict[int, str]:
    """partition of ``topic`` -> web URL of the member it is assigned to."""
    owners: dict[int, str] = {}
    for member_id, assignment in assignments.items():
        for assigned_topic, partitions in assignment.assignment:
            if assigned_topic == topic:
                for partition in partitions:
                    owners[partition] = urls.get(member_id, "")
    return owners


def owner_assignor(
    url: str, owners_topic: str, on_owners: Callable[[dict[int, str]], None]
) -> type[RangePartitionAssignor]:
    """An assignor class for one engine instance (aiokafka calls assignors as classes)."""

    class OwnerMapAssignor(RangePartitionAssignor):  # type: ignore[misc]
        name = "missing-alerts-range-owners"
        version = 0

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), url.encode())

        @classmethod
        def assign(
            cls,
            cluster: ClusterMetadata,
            members: Mapping[str, ConsumerProtocolMemberMetadata],
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            base = RangePartitionAssignor.assign(cluster, members)
            urls = {m: bytes(meta.user_data or b"").decode() for m, meta in members.items()}
            owners = owners_from(base, urls, owners_topic)
            data = json.dumps({str(p): u for p, u in sorted(owners.items())}).encode()
            return {
                m: ConsumerProtocolMemberAssignment(cls.version, a.assignment, data)
                for m, a in base.items()
            }

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            raw = json.loads(bytes(assignment.user_data or b"{}") or b"{}")
            on_owners({int(p): str(u) for p, u in raw.items()})

    return OwnerMapAssignor
