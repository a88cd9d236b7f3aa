"""In-memory index of the next due time per child, for the escalation timer. Pure.

The timer must find due episodes without scanning every one on every tick: a min-heap with lazy
deletion gives O(log n) updates from the engine and O(k log n) to pop the k due entries. The
index is derived data: it is rebuilt from the episodes table after every rebalance, so losing it
in a crash loses nothing.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DueEntry:
    key: bytes
    due_at: datetime
    tag: str  # what the emitter needs besides the key (an episode code, a child reference)


class DueIndex:
    def __init__(self, retry_after: timedelta = timedelta(seconds=30)) -> None:
        # key -> (current due timestamp, episode code); heap holds (timestamp, key) possibly stale.
        self._current: dict[bytes, tuple[float, datetime, str]] = {}
        self._heap: list[tuple[float, bytes]] = []
        self.retry_after = retry_after

    def __len__(self) -> int:
        return len(self._current)

    def set(self, key: bytes, due_at: datetime | None, tag: str | None) -> None:
        """Record the child's next due time (None: nothing scheduled)."""
        if due_at is None or tag is None:
            self._current.pop(key, None)
            return
        ts = due_at.timestamp()
        current = self._current.get(key)
        if current is not None and current[0] == ts and current[2] == tag:
            return
        self._current[key] = (ts, due_at, tag)
        heapq.heappush(self._heap, (ts, key))

    def pop_due(self, now: datetime, limit: int = 10_000) -> list[DueEntry]:
        """Entries due at ``now``. Each stays indexed with a retry time, so a 'due' event lost in
        a crash or a failed send is emitted again unless the engine reschedules it first."""
        out: list[DueEntry] = []
        cutoff = now.timestamp()
        retry_at = now + self.retry_after
        while self._heap and self._heap[0][0] <= cutoff and len(out) < limit:
            ts, key = heapq.heappop(self._heap)
            current = self._current.get(key)
            if current is None or current[0] != ts:
                continue  # stale heap entry: rescheduled or removed since
            _, due_at, code = current
            out.append(DueEntry(key, due_at, code))
            self._current[key] = (retry_at.timestamp(), retry_at, code)
            heapq.heappush(self._heap, (retry_at.timestamp(), key))
        if len(self._heap) > 4 * len(self._current) + 1024:
            self._compact()
        return out

    def next_due(self) -> datetime | None:
        while self._heap:
            ts, key = self._heap[0]
            current = self._current.get(key)
            if current is not None and current[0] == ts:
                return current[1]
            heapq.heappop(self._heap)
        return None

    def clear(self) -> None:
        self._current.clear()
        self._heap.clear()

    def _compact(self) -> None:
        self._heap = [(ts, key) for key, (ts, _, _) in self._current.items()]
        heapq.heapify(self._heap)
