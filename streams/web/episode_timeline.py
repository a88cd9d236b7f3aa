"""The timeline of an episode for the duty desk (issue 14): what happened, in the order it
happened, from the episode's own state (its reports and updates, the steps fired, the
acknowledgements, the return, the interview, a cancellation). Pure; no personal data: risk
flags by name, roles and rota ids, never notes, names or addresses.

Why from state and not from the audit records: the state is what the engine serves for
``GET /v1/episodes/{code}`` already (one read, on the owning worker), it is bounded
(docs/episode-engine.md, "Bounded state"), and it is the episode as it now stands after late
information, which is what a duty worker needs; the audit topic keeps every record for the
statutory return and for investigations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.episodes.state import Episode


def timeline(episode: Episode) -> list[dict[str, Any]]:
    entries: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(at: datetime | None, what: str, **detail: Any) -> None:
        if at is not None:
            entries.append((at, len(entries), {"at": at.isoformat(), "what": what, **detail}))

    add(episode.last_seen_at, "last_seen")
    for i, fact in enumerate(sorted(episode.facts, key=lambda f: f.at)):
        kind = "reported" if i == 0 else ("reported_again" if fact.last_seen_at else "updated")
        add(
            fact.at,
            kind,
            category=fact.category.value if fact.category else None,
            flags=sorted(f.value for f in fact.flags),
            immediate_danger=fact.immediate_danger,
        )
    for step_id, at in episode.fired.items():
        add(at, "step_fired", step_id=step_id)
    for person, at in episode.acknowledged_by.items():
        add(at, "acknowledged", by=person)
    add(episode.returned_at, "returned", how=episode.returned_how)
    add(episode.cancelled_at, "cancelled", reason=episode.cancel_reason)
    if episode.rhi_offered_on is not None:
        entries.append(
            (
                episode.closed_at or episode.reported_at,
                len(entries),
                {
                    "at": None,
                    "what": "return_interview",
                    "offered_on": episode.rhi_offered_on.isoformat(),
                    "accepted": episode.rhi_accepted,
                },
            )
        )
    return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]
