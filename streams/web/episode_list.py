"""``GET /v1/episodes``: the duty desk's list of episodes, answered from memory.

Every worker keeps the engine's ``episode-views`` table (streams/episodes/views.py) decoded in
an ``EpisodeIndex``, fed by each changelog record as the table applies it, so a request sorts
and pages what is already in memory instead of reading and decoding the table. Scoped by the
key's local authorities; never cached by the browser (docs/duty-desk.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import faust
from pydantic import ValidationError

from streams.episodes.views import EpisodeSummary, sort_key
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import Scope
from streams.web.episode_query import query
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger

log = get_logger("missing_alerts.web.episode_list")
NO_STORE: Final = {"Cache-Control": "no-store"}


class EpisodeIndex:
    """Episode code -> summary; the sorted order is rebuilt only after a change."""

    def __init__(self) -> None:
        self._by_code: dict[str, EpisodeSummary] = {}
        self._sorted: list[EpisodeSummary] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        code = key.decode("ascii", "replace")
        if value is None:
            self._by_code.pop(code, None)
        else:
            try:
                self._by_code[code] = EpisodeSummary.model_validate_json(value)
            except ValidationError:  # a later version's record: leave the old one
                log.warning("episode view unreadable", episode_code=code[:12])
                return
        self._sorted = None

    async def on_changelog_event(self, event: Any) -> None:
        self.apply(event.message.key, event.message.value)

    def ordered(self) -> list[EpisodeSummary]:
        if self._sorted is None:
            self._sorted = sorted(self._by_code.values(), key=sort_key)
        return self._sorted

    def __len__(self) -> int:
        return len(self._by_code)


def select(
    index: EpisodeIndex,
    *,
    authorities: Iterable[str],
    status: str,
    closed_since: datetime,
    offset: int,
    limit: int,
) -> tuple[list[EpisodeSummary], int | None]:
    """One page of the key's episodes, and the offset of the next page (None at the end)."""
    allowed = set(authorities)
    chosen = [
        s
        for s in index.ordered()
        if s.local_authority in allowed
        and (status == "all" or s.status == status)
        and (s.status == "open" or (s.returned_at or s.updated_at) >= closed_since)
    ]
    page = chosen[offset : offset + limit]
    return page, (offset + limit if offset + limit < len(chosen) else None)


def wire_episode_list(w: Wiring, r: Resources, api: Api, index: EpisodeIndex) -> None:
    @w.app.page("/v1/episodes")
    class EpisodeList(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any) -> Any:
            try:
                key = api.authenticate(request, Scope.EPISODES_READ)
                authorities, status, offset, limit, days = query(key, request.query)
            except ApiError as exc:
                return problem(self, exc)
            since = r.clock.now() - timedelta(days=days)
            page, next_offset = select(
                index,
                authorities=authorities,
                status=status,
                closed_since=since,
                offset=offset,
                limit=limit,
            )
            body = {
                "episodes": [s.model_dump(mode="json") for s in page],
                "next_cursor": str(next_offset) if next_offset is not None else None,
            }
            return self.json(body, headers=NO_STORE)
