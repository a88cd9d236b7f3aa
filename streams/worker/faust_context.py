"""Make a Faust event current again, so a table write lands on that event's partition.

Faust picks the changelog partition and the RocksDB shard of a table write from the event being
processed. The engine writes the table after a whole batch's effects are acknowledged, so it
re-enters each event's context explicitly. This uses the contextvar faust.streams reads
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
