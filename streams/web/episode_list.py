"""``GET /v1/episodes``: the duty desk's list of episodes, answered from memory.

Every worker keeps the engine's ``episode-views`` table (streams/episodes/views.py) in an
``EpisodeIndex`` (streams/web/episode_index.py), fed by each changelog record as the table
applies it and kept sorted, so a request slices what is already in memory and joins its JSON
instead of reading and decoding the table. Scoped by the key's local authorities; never cached
by the browser (docs/duty-desk.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from hashlib import blake2b
from heapq import merge
from itertools import islice
from typing import Any, Final, NamedTuple

import faust

from streams.episodes.views import EpisodeSummary
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import Scope
from streams.web.episode_index import Entry, EpisodeIndex
from streams.web.episode_query import query
from streams.worker.wiring import Resources, Wiring

NO_STORE: Final = {"Cache-Control": "no-store"}


class Page(NamedTuple):
    """One page of the key's episodes, where the next starts (None at the end), and how many
    there are in all (the desk's "12 open")."""

    entries: list[Entry]
    next_offset: int | None
    total: int

    @property
    def episodes(self) -> list[EpisodeSummary]:
        return [EpisodeSummary.model_validate_json(entry[3]) for entry in self.entries]

    def body(self) -> bytes:
        """The JSON answer, from each summary's JSON encoded when it arrived."""
        cursor = b"null" if self.next_offset is None else b'"%d"' % self.next_offset
        episodes = b",".join(entry[3] for entry in self.entries)
        return b'{"episodes":[%b],"next_cursor":%b,"total":%d}' % (episodes, cursor, self.total)


def select(
    index: EpisodeIndex,
    *,
    authorities: Iterable[str],
    status: str,
    closed_since: datetime,
    offset: int,
    limit: int,
) -> Page:
    """Open episodes are a slice of their authority's sorted list; closed and cancelled ones
    are filtered by how recently they ended (few, by the retention of the state)."""
    statuses = ("open", "closed", "cancelled") if status == "all" else (status,)
    groups = [
        index.group(a, st) if st == "open" else _recent(index.group(a, st), closed_since)
        for a in sorted(set(authorities))
        for st in statuses
    ]
    total = sum(len(g) for g in groups)
    end = offset + limit
    if len(groups) == 1:
        chosen = groups[0][offset:end]
    else:
        chosen = list(islice(merge(*groups), offset, end))
    return Page(chosen, end if end < total else None, total)


def etag(body: bytes) -> str:
    """A strong validator of the answer's bytes. The desk polls the list every few seconds with
    ``If-None-Match`` and gets an empty 304 while nothing changed; the answer is still
    ``no-store`` (the page sends the validator itself, the browser keeps no copy)."""
    return f'"{blake2b(body, digest_size=12).hexdigest()}"'


def _recent(entries: list[Entry], since: datetime) -> list[Entry]:
    return [e for e in entries if e[2] >= since]


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
            body = page.body()
            tag = etag(body)
            headers = {**NO_STORE, "ETag": tag}
            if request.headers.get("If-None-Match") == tag:
                return self.bytes(b"", status=304, headers=headers)
            return self.bytes(body, content_type="application/json", headers=headers)
