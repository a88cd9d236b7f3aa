"""Stand-ins for the aiokafka records the engine and dispatch read, for broker-free tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FakeRecord:
    """The attributes of an aiokafka ConsumerRecord the engine reads."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
