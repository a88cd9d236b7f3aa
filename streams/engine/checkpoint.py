"""Batches applied since the last commit (ENGINE_COMMIT_INTERVAL_S > 0): the states they
wrote (the next batches read them before the store has them) and their results. Pure. Their
outputs are already with the sink (streams/engine/ports.py, ``Sink.send``).

With the default interval of 0 each batch is delivered at once (an absence is on the alerts
topic within milliseconds). A longer interval commits several batches in one transaction per
input partition, as Kafka Streams' and Quix Streams' checkpoints do: fewer transactions,
higher throughput, and (exactly once) every output invisible to read_committed readers until
the commit. The benchmark compares both with a peer at the same interval (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.engine.batch import BatchResult


@dataclass
class Checkpoint:
    states: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    results: list[BatchResult] = field(default_factory=list)
    started: float | None = None  # when the first batch held was applied (clock seconds)

    def __bool__(self) -> bool:
        return bool(self.results)

    def add(
        self,
        states: Mapping[int, Mapping[bytes, bytes | None]],
        result: BatchResult,
        now: float,
    ) -> None:
        if self.started is None:
            self.started = now
        for partition, entries in states.items():
            self.states.setdefault(partition, {}).update(entries)  # a later state wins
        self.results.append(result)

    def held(self, partition: int, key: bytes) -> tuple[bool, bytes | None]:
        """(whether this checkpoint holds the child's state, the state)."""
        entries = self.states.get(partition)
        if entries is not None and key in entries:
            return True, entries[key]
        return False, None

    def due(self, now: float, interval: float) -> bool:
        return self.started is not None and now - self.started >= interval
