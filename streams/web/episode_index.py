"""The duty desk's read model in a worker's memory: every record of the ``episode-views``
table decoded as the table applies it (streams/app.py feeds ``on_changelog_event``), so the
list sorts and pages what is already decoded, and a report learns the code of the open
episode it joins without asking the engine. No I/O of its own."""

from __future__ import annotations

from bisect import bisect_left, insort
from datetime import datetime
from heapq import merge
from typing import Any

from pydantic import ValidationError

from streams.episodes.views import EpisodeSummary, SortKey, sort_key
from telemetry.logging import get_logger

log = get_logger("missing_alerts.web.episode_index")


Group = tuple[str, str]  # (local authority, status)
# The sort key (unique: it ends with the code), the child, when the episode ended (or was last
# updated, while open) and its JSON as the API sends it, encoded once here so a request joins
# bytes instead of serialising 50 models. No model is kept: every worker holds every summary,
# and a pydantic model costs some 2 KB more than its JSON (the memory benchmark, 100,000 open).
Entry = tuple[SortKey, str, datetime, bytes]


class EpisodeIndex:
    """Episode code -> summary, and per (authority, status) a list kept sorted as records
    arrive (bisect), so a page is a slice: the cost of a request does not grow with the number
    of open episodes (bench/episode_list.py; a full scan took 5 ms at 10,000)."""

    def __init__(self) -> None:
        self._by_code: dict[str, tuple[Group, Entry]] = {}
        self._groups: dict[Group, list[Entry]] = {}
        self._open_of: dict[str, str] = {}  # child reference -> its open episode's code

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        code = key.decode("ascii", "replace")
        if value is None:
            self._remove(code)
            return
        try:
            summary = EpisodeSummary.model_validate_json(value)
        except ValidationError:  # a later version's record: leave the old one
            log.warning("episode view unreadable", episode_code=code[:12])
            return
        self._remove(code)
        group = (summary.local_authority, summary.status)
        raw = summary.__pydantic_serializer__.to_json(summary)
        entry = (
            sort_key(summary),
            summary.child_ref,
            summary.returned_at or summary.updated_at,
            raw,
        )
        insort(self._groups.setdefault(group, []), entry)
        self._by_code[code] = (group, entry)
        if summary.status == "open":
            self._open_of[summary.child_ref] = code

    def _remove(self, code: str) -> None:
        old = self._by_code.pop(code, None)
        if old is None:
            return
        group, entry = old
        entries = self._groups[group]
        del entries[bisect_left(entries, entry)]
        child = entry[1]
        if self._open_of.get(child) == code:
            del self._open_of[child]

    def get(self, code: str) -> EpisodeSummary | None:
        found = self._by_code.get(code)
        return EpisodeSummary.model_validate_json(found[1][3]) if found else None

    def open_code(self, child_ref: str) -> str | None:
        return self._open_of.get(child_ref)

    async def on_changelog_event(self, event: Any) -> None:
        self.apply(event.message.key, event.message.value)

    def group(self, authority: str, status: str) -> list[Entry]:
        """The sorted entries of one authority and status (do not modify)."""
        return self._groups.get((authority, status), [])

    def ordered(self) -> list[EpisodeSummary]:
        """Every summary in list order (tests and tools; requests use ``group``)."""
        return [EpisodeSummary.model_validate_json(e[3]) for e in merge(*self._groups.values())]

    def __len__(self) -> int:
        return len(self._by_code)
