"""Who was sent something for an episode, and when dispatch learnt the episode closed. Pure.

Kept per episode code (the ``episode-notified`` table every worker reads) because three things
ask it: an SMS reply is an acknowledgement only from a number that was alerted for that
episode; the API acknowledges only in the name of someone who was told (or the key's own
responder); and the retention sweep deletes delivery records a retention period after the
episode closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Notified:
    people: list[str] = field(default_factory=list)
    closed_at: datetime | None = None

    def with_person(self, person: str) -> Notified | None:
        """The updated entry, or None when it already names the person."""
        if person in self.people:
            return None
        return Notified([*self.people, person], self.closed_at)

    def with_close(self, at: datetime) -> Notified | None:
        if self.closed_at is not None and self.closed_at <= at:
            return None
        return Notified(list(self.people), at)


def encode(entry: Notified) -> bytes:
    closed = entry.closed_at.isoformat() if entry.closed_at else None
    return json.dumps({"people": entry.people, "closed_at": closed}).encode()


def decode(raw: bytes | None) -> Notified:
    """Also reads the first format, a bare JSON list of people."""
    if not raw:
        return Notified()
    data = json.loads(raw)
    if isinstance(data, list):
        return Notified([str(p) for p in data])
    closed = data.get("closed_at")
    return Notified(
        [str(p) for p in data.get("people", [])],
        datetime.fromisoformat(closed) if closed else None,
    )
