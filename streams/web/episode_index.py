"""The duty desk's read model in a worker's memory: every record of the ``episode-views``
table decoded as the table applies it (streams/app.py feeds ``on_changelog_event``), so the
list sorts and pages what is already decoded, and a report learns the code of the open
episode it joins without asking the engine. No I/O of its own."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from streams.episodes.views import EpisodeSummary, sort_key
from telemetry.logging import get_logger

log = get_logger("missing_alerts.web.episode_index")


class EpisodeIndex:
    """Episode code -> summary; the sorted order is rebuilt only after a change."""

    def __init__(self) -> None:
        self._by_code: dict[str, EpisodeSummary] = {}
        self._open_of: dict[str, str] = {}  # child reference -> its open episode's code
        self._sorted: list[EpisodeSummary] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        code = key.decode("ascii", "replace")
        if value is None:
            self._forget(self._by_code.pop(code, None))
        else:
            try:
                summary = EpisodeSummary.model_validate_json(value)
            except ValidationError:  # a later version's record: leave the old one
                log.warning("episode view unreadable", episode_code=code[:12])
                return
            self._forget(self._by_code.get(code))
            self._by_code[code] = summary
            if summary.status == "open":
                self._open_of[summary.child_ref] = code
        self._sorted = None

    def _forget(self, old: EpisodeSummary | None) -> None:
        if old is not None and self._open_of.get(old.child_ref) == old.episode_code:
            del self._open_of[old.child_ref]

    def get(self, code: str) -> EpisodeSummary | None:
        return self._by_code.get(code)

    def open_code(self, child_ref: str) -> str | None:
        return self._open_of.get(child_ref)

    async def on_changelog_event(self, event: Any) -> None:
        self.apply(event.message.key, event.message.value)

    def ordered(self) -> list[EpisodeSummary]:
        if self._sorted is None:
            self._sorted = sorted(self._by_code.values(), key=sort_key)
        return self._sorted

    def __len__(self) -> int:
        return len(self._by_code)
