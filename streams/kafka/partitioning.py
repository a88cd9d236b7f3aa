"""Which partition a keyed record goes to, computed where a record is produced with an explicit
partition (engine batches, due events) or where a worker decides what it owns."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner (what aiokafka and Faust use for keyed records)."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)
