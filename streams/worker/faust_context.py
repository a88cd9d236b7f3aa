"""Make a Faust event current again, so a table write lands on that event's partition.

Faust picks the changelog partition and the RocksDB shard of a table write from the event being
processed. Dispatch handles each record in a task of its own and writes the delivery log when
the provider has answered, long after the agent moved on to other records, so it re-enters the
record's event context explicitly. This uses the contextvar faust.streams reads
(faust-streaming 0.15); tests/integration cover it through restarts that read the table back.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def event_context(event: Any) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
