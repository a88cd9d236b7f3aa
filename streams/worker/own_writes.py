"""Read-modify-write on a global table that every worker reads in full.

Dispatch keeps two per-episode entries that every worker must see (who was messaged, for an
SMS reply or an acknowledgement reaching any worker; who was told and how, for the episode
view), so their tables are read on every worker from all partitions of the changelog
(``synchronize_all_active_partitions``, streams/app.py). The writing worker then also reads
its own writes back, a moment after making them: until the newest has come back, its local
copy can hold an older value of a key it has just written, and a read-modify-write in that
moment would build on the older value and lose a change (four messages of one step, recorded
within a millisecond, all change one episode's entry). Reading through the values this worker
wrote last closes that window.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from streams.worker.faust_context import event_context

_GONE: Final = b""  # a key this worker deleted (table values are never empty)


class OwnWrites:
    """A global table seen by its writer: the latest value written here wins over the local
    copy. Bounded, least recently written first out: by the time ``limit`` other keys have been
    written, an old key's last write has long come back through the changelog."""

    def __init__(self, table: Any, limit: int = 4096) -> None:
        self.table, self.limit = table, limit
        self._latest: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, key: bytes) -> bytes | None:
        if key in self._latest:
            return self._latest[key] or None
        raw = self.table.get(key)
        return bytes(raw) if raw else None

    def set(self, event: Any, key: bytes, value: bytes) -> None:
        with event_context(event):
            self.table[key] = value
        self._remember(key, value)

    def delete(self, event: Any, key: bytes) -> None:
        with event_context(event):
            self.table.pop(key, None)
        self._remember(key, _GONE)

    def _remember(self, key: bytes, value: bytes) -> None:
        self._latest[key] = value
        self._latest.move_to_end(key)
        while len(self._latest) > self.limit:
            self._latest.popitem(last=False)
