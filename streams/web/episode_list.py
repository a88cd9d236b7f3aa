"""``GET /v1/episodes``: the duty desk's list of episodes, answered from memory.

Every worker keeps the engine's ``episode-views`` table (streams/episodes/views.py) decoded in
an ``EpisodeIndex``, fed by each changelog record as the table applies it, so a request sorts
and pages what is already in memory instead of reading and decoding the table. Scoped by the
key's local authorities; never cached by the browser (docs/duty-desk.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

import faust

from streams.episodes.views import EpisodeSummary
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import Scope
from streams.web.episode_index import EpisodeIndex
from streams.web.episode_query import query
from streams.worker.wiring import Resources, Wiring

NO_STORE: Final = {"Cache-Control": "no-store"}


class Page(NamedTuple):
    """One page of the key's episodes, where the next starts (None at the end), and how many
    there are in all (the desk's "12 open")."""

    episodes: list[EpisodeSummary]
    next_offset: int | None
    total: int


def select(
    index: EpisodeIndex,
    *,
    authorities: Iterable[str],
    status: str,
    closed_since: datetime,
    offset: int,
    limit: int,
) -> Page:
    allowed = set(authorities)
    chosen = [
        s
        for s in index.ordered()
        if s.local_authority in allowed
        and (status == "all" or s.status == status)
        and (s.status == "open" or (s.returned_at or s.updated_at) >= closed_since)
    ]
    end = offset + limit
    return Page(chosen[offset:end], end if end < len(chosen) else None, len(chosen))


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
            page = select(
                index,
                authorities=authorities,
                status=status,
                closed_since=since,
                offset=offset,
                limit=limit,
            )
            body = {
                "episodes": [s.model_dump(mode="json") for s in page.episodes],
                "next_cursor": str(page.next_offset) if page.next_offset is not None else None,
                "total": page.total,
            }
            return self.json(body, headers=NO_STORE)
