"""Time as a dependency (after arroyo's Clock): one clock per worker, from its settings, that
every time read goes through (the engine, dispatch, the API and its limiters, the timers).

Three clocks: the system's; a manual one that unit tests move by hand; and, only when
``ENVIRONMENT=test``, the system's shifted by an offset read from a file (``TEST_CLOCK_FILE``).
A test writes the file to move both processes of a worker forward at once, so an integration
test can let a real 30-minute ladder step fall due without waiting 30 minutes or shortening the
shipped policy.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from config.settings import Settings


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class FileOffsetClock:
    """The system clock plus the number of seconds written in ``path`` (0 while it is absent).

    The file is looked at on every call (a stat; re-read only when it changed), so a test that
    moves the clock and then produces an event knows the worker reads the event at the new
    time: with a cache, an event produced right after the move was judged by the old clock
    (and dead-lettered as from the future). Test-only (``ENVIRONMENT=test``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = timedelta(0)
        self._stamp: tuple[int, int, int] | None = None

    def now(self) -> datetime:
        self._refresh()
        return datetime.now(UTC) + self._offset

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._offset, self._stamp = timedelta(0), None
            return
        # The writer replaces the file (a new inode each time): two writes of the same size
        # within one timestamp tick still differ.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            self._offset = timedelta(seconds=float(self.path.read_text().strip() or 0))
            self._stamp = stamp
        except (OSError, ValueError):
            pass  # half-written: keep the last offset, look again next time


def clock_from_settings(settings: Settings) -> Clock:
    if settings.environment == "test" and settings.test_clock_file is not None:
        return FileOffsetClock(settings.test_clock_file)
    return SystemClock()
