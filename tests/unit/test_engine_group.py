"""The engine's group assignor (streams/engine/group.py): co-partitioned range assignment, plus
the partition -> owner URL map every member learns from its assignment."""

from __future__ import annotations

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from streams.engine.group import owner_assignor, owners_from

TOPICS = ("events", "due", "profiles")
URL_A = "http://a:1"
URL_B = "http://b:2"


class FakeCluster:
    """Just what RangePartitionAssignor reads from ClusterMetadata."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self._partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self._partitions.get(topic)
        return None if count is None else set(range(count))


def member(url: str, topics: tuple[str, ...] = TOPICS) -> ConsumerProtocolMemberMetadata:
    return ConsumerProtocolMemberMetadata(0, list(topics), url.encode())


def by_topic(assignment: ConsumerProtocolMemberAssignment) -> dict[str, list[int]]:
    return {topic: sorted(partitions) for topic, partitions in assignment.assignment}


def collecting() -> tuple[list[dict[int, str]], type[RangePartitionAssignor]]:
    seen: list[dict[int, str]] = []
    return seen, owner_assignor(URL_A, "events", seen.append)


# ------------------------------------------------------------------------------ owners_from


def test_owners_from_maps_one_topics_partitions_to_member_urls() -> None:
    assignments = {
        "m-a": ConsumerProtocolMemberAssignment(0, [("events", [0, 1]), ("due", [0, 1])], b""),
        "m-b": ConsumerProtocolMemberAssignment(0, [("events", [2]), ("due", [2, 3])], b""),
    }
    urls = {"m-a": URL_A, "m-b": URL_B}
    assert owners_from(assignments, urls, "events") == {0: URL_A, 1: URL_A, 2: URL_B}
    assert owners_from(assignments, urls, "due") == {0: URL_A, 1: URL_A, 2: URL_B, 3: URL_B}
    assert owners_from(assignments, urls, "profiles") == {}


def test_owners_from_a_member_without_a_url_is_empty_string() -> None:
    assignments = {"m-x": ConsumerProtocolMemberAssignment(0, [("events", [5])], b"")}
    assert owners_from(assignments, {}, "events") == {5: ""}


# ------------------------------------------------------------------------------ the assignor


def test_metadata_carries_the_url_as_user_data() -> None:
    _, assignor = collecting()
    meta = assignor.metadata(["events", "due"])
    assert meta.user_data == URL_A.encode()
    assert sorted(meta.subscription) == ["due", "events"]
    decoded = ConsumerProtocolMemberMetadata.decode(meta.encode())  # survives the wire
    assert decoded.user_data == URL_A.encode()


def test_assign_co_partitions_and_shares_the_owner_map() -> None:
    seen, assignor = collecting()
    cluster = FakeCluster({topic: 4 for topic in TOPICS})
    members = {"member-a": member(URL_A), "member-b": member(URL_B)}

    assignments = assignor.assign(cluster, members)

    assert set(assignments) == set(members)
    layouts = {m: by_topic(a) for m, a in assignments.items()}
    for layout in layouts.values():
        assert set(layout) == set(TOPICS)
        partitions = {tuple(parts) for parts in layout.values()}
        assert len(partitions) == 1, f"not co-partitioned: {layout}"
    a_parts = set(layouts["member-a"]["events"])
    b_parts = set(layouts["member-b"]["events"])
    assert a_parts and b_parts and not a_parts & b_parts
    assert a_parts | b_parts == {0, 1, 2, 3}

    expected = {p: URL_A for p in a_parts} | {p: URL_B for p in b_parts}
    user_data = {a.user_data for a in assignments.values()}
    assert len(user_data) == 1  # every member learns the same map

    for assignment in assignments.values():
        wire = ConsumerProtocolMemberAssignment.decode(assignment.encode())
        assignor.on_assignment(wire)
    assert seen == [expected, expected]
    assert set(seen[0]) == {0, 1, 2, 3}


def test_uneven_members_still_cover_every_partition() -> None:
    seen, assignor = collecting()
    cluster = FakeCluster({topic: 4 for topic in TOPICS})
    urls = {"m-1": "http://one:1", "m-2": "http://two:2", "m-3": "http://three:3"}
    assignments = assignor.assign(cluster, {m: member(u) for m, u in urls.items()})
    assignor.on_assignment(assignments["m-3"])
    (owners,) = seen
    assert set(owners) == {0, 1, 2, 3}
    assert set(owners.values()) == set(urls.values())
    for member_id, assignment in assignments.items():
        for partition in by_topic(assignment)["due"]:
            assert owners[partition] == urls[member_id]


def test_on_assignment_without_user_data_reports_an_empty_map() -> None:
    seen, assignor = collecting()
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [("events", [0])], b""))
    assert seen == [{}]
