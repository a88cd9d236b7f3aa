"""Move a worker's clock from a test (streams/runtime/clock.py, FileOffsetClock): both of its
processes read the offset from one file, so a ladder step 30 minutes away falls due as soon as
the test says so, on the shipped policy."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class TestClock:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = timedelta(0)
        self._write()

    def advance(self, delta: timedelta) -> None:
        self.offset += delta
        self._write()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{self.offset.total_seconds()}\n")
        os.replace(tmp, self.path)  # atomic: the worker never reads half a number
