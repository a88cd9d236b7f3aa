"""Rebuild the tables every worker reads in bulk, then apply each new record as it comes.

Four tables are written by one process and read by every worker (the engine's episode codes
and summaries, dispatch's who-was-messaged and who-was-told: streams/app.py). Faust reads their
partitions as active ones and applies their records in buffers of ``recovery_buffer_size``,
while recovering and ever after. A buffer of one is what a live table needs (a code the engine
wrote a moment ago must be found by the next API call), but a rebuild from the changelog
then applies records one at a time: with the data directory lost, the worker was ready (and
dispatch sending) 56 s after its start at 100,000 open episodes, and 98 s once dispatch's
tables were read this way too (docs/BENCHMARKS.md, recovery). So these tables recover with
large buffers, and when Faust ends its recovery (having applied what was buffered) their
buffers drop to one record. After a rebalance Faust recovers again with the buffer of one,
from the offsets it had reached: that catch-up is short.
"""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery

_MARK = "_missing_alerts_live_tables"
LIVE_ATTR = "missing_alerts_live"  # set on a table (streams/app.py) to make it live


def live_tables() -> None:
    """Idempotent: patch Faust's recovery once per process."""
    original = Recovery._set_recovery_ended
    if getattr(original, _MARK, False):
        return

    def ended(self: Any) -> None:
        original(self)
        go_live(self)

    setattr(ended, _MARK, True)
    Recovery._set_recovery_ended = ended  # type: ignore[method-assign]


def go_live(recovery: Any) -> None:
    """From now on, apply each record of a live table as it comes. Faust calls this right
    after it applied everything buffered, so nothing waits in a buffer."""
    for tp, table in list(recovery.tp_to_table.items()):
        if getattr(table, LIVE_ATTR, False):
            table.recovery_buffer_size = 1
            recovery.buffer_sizes[tp] = 1
    for table, buffer in list(recovery.buffers.items()):
        if buffer and getattr(table, LIVE_ATTR, False):
            table.apply_changelog_batch(buffer)
            buffer.clear()
