"""Wire events as JSON bytes, built from plain dicts so 200k of them take a second, not a minute.

They follow ``schemas/events.py`` exactly; ``validate_sample`` parses some of every type with the
real schema so a schema change breaks the benchmark loudly instead of dead-lettering the
backlog.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import parse_input_event
from streams.episodes.state import episode_code_for

REPORTER = {"role": "carer", "organisation": "Example House"}
CSE = "child_sexual_exploitation"


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _base(kind: str, child: str, at: datetime, event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": kind,
        "schema_version": 1,
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": _ts(at),
        "child_ref": child,
    }


def profile(child: str, at: datetime, flags: list[str] | None = None) -> dict[str, Any]:
    return {
        **_base("profile", child, at),
        "initials": "JD",
        "date_of_birth": "2010-06-01",
        "local_authority": "LA-EXAMPLE",
        "police_force": "FORCE-EXAMPLE",
        "risk_flags": flags or [],
    }


def check_in(child: str, at: datetime) -> dict[str, Any]:
    return {
        **_base("check_in", child, at),
        "seen_at": _ts(at),
        "reporter": REPORTER,
        "present_at_placement": True,
    }


def absence(
    child: str, at: datetime, last_seen: datetime, flags: list[str] | None = None
) -> dict[str, Any]:
    return {
        **_base("absence", child, at),
        "last_seen_at": _ts(min(last_seen, at)),
        "category": "missing",
        "reporter": REPORTER,
        "reported_flags": flags or [],
    }


def update(child: str, at: datetime, code: str) -> dict[str, Any]:
    return {
        **_base("update", child, at),
        "episode_code": code,
        "kind": "sighting",
        "reporter": REPORTER,
    }


def ack(child: str, at: datetime, code: str) -> dict[str, Any]:
    return {
        **_base("acknowledgement", child, at),
        "episode_code": code,
        "recipient_id": "dsw-day",
        "via": "api",
    }


def returned(child: str, at: datetime, code: str | None) -> dict[str, Any]:
    event = {**_base("return", child, at), "returned_at": _ts(at), "reporter": REPORTER}
    if code is not None:
        event["episode_code"] = code
    return event


def code_of(event: dict[str, Any]) -> str:
    """The episode code the engine will give the episode this absence opens."""
    return episode_code_for(event["child_ref"], uuid.UUID(event["event_id"]))


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["child_ref"].encode(), json.dumps(event, separators=(",", ":")).encode()


def validate_sample(events: list[dict[str, Any]], per_type: int = 20) -> None:
    """Parse up to ``per_type`` events of every type with the real schema (raises if invalid)."""
    seen: dict[str, int] = {}
    for event in events:
        n = seen.get(event["type"], 0)
        if n < per_type:
            parse_input_event(json.dumps(event).encode())
            seen[event["type"]] = n + 1


# --------------------------------------------------------------------- mixed backlog


@dataclass
class Mix:
    """What a mixed backlog contains, by event type, plus what it should produce."""

    counts: dict[str, int] = field(default_factory=dict)
    children: int = 0

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def mixed_backlog(
    total: int, children: int, *, seed: int = 7, start: datetime | None = None
) -> tuple[list[dict[str, Any]], Mix]:
    """About ``total`` events over ``children`` children, in per-child order, interleaved.

    Per child: a profile, then check-ins; a quarter of the children go missing once (absence,
    half of them with a high-risk flag), most of those get a sighting update, an
    acknowledgement naming the episode code, and a return. The rest is check-ins. Times are
    the last minute before ``start`` (default now), so only each ladder's first step fires and
    the timer stays quiet.
    """
    rng = random.Random(seed)
    now = start or datetime.now(UTC)
    per_child = max(2, total // children)
    scripts: list[list[dict[str, Any]]] = []
    mix = Mix(children=children)
    t0 = now - timedelta(seconds=60)
    for i in range(children):
        child = f"B{i:06d}"
        flags = [CSE] if rng.random() < 0.05 else []
        seq: list[dict[str, Any]] = [profile(child, t0, flags)]
        kinds: list[str] = ["check_in"] * (per_child - 1)
        if rng.random() < 0.25 and per_child >= 6:
            at = rng.randrange(1, per_child - 4)
            tail = ["absence"]
            if rng.random() < 0.7:
                tail.append("update")
            if rng.random() < 0.6:
                tail.append("ack")
            if rng.random() < 0.8:
                tail.append("return")
            kinds[at : at + len(tail)] = tail
            kinds = kinds[: per_child - 1]
        code: str | None = None
        for j, kind in enumerate(kinds, start=1):
            at_time = t0 + timedelta(seconds=55 * j / per_child)
            if kind == "check_in":
                seq.append(check_in(child, at_time))
            elif kind == "absence":
                high = rng.random() < 0.5
                ev = absence(
                    child, at_time, at_time - timedelta(minutes=1), [CSE] if high else None
                )
                code = code_of(ev)
                seq.append(ev)
            elif kind == "update" and code:
                seq.append(update(child, at_time, code))
            elif kind == "ack" and code:
                seq.append(ack(child, at_time, code))
            elif kind == "return" and code:
                seq.append(returned(child, at_time, code))
        scripts.append(seq)
    # Interleave: round r carries event r of every child (per-child order is kept).
    out: list[dict[str, Any]] = []
    for r in range(max(len(s) for s in scripts)):
        for seq in scripts:
            if r < len(seq):
                out.append(seq[r])
                mix.add(seq[r]["type"])
    return out, mix


def sentinels(keys: list[str], at: datetime | None = None) -> list[dict[str, Any]]:
    """A return naming no episode for a child with none: the engine records exactly one
    ``return_held`` record for it (held for an absence that never comes). One per partition,
    produced last, marks the moment that partition's backlog has been processed."""
    when = at or datetime.now(UTC)
    return [returned(key, when, None) for key in keys]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
