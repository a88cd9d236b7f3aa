"""One batch of input records through the episode machine, without I/O.

The engine's loop (streams/engine/loop.py) hands in consumed records and a way to read the
store; this returns what to send and what to store. Keeping the batch here, pure, lets unit
tests drive it with any records, and keeps the loop to one rule: deliver everything, then
store. A crash before the store write replays the batch; a crash after it has nothing to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from config.policy import Policy
from schemas.alerts import Alert
from schemas.common import authority_of
from schemas.events import ChildProfile, InputEvent
from schemas.records import EpisodeRecord
from schemas.redaction import KeptPayload, keep_payload
from streams.episodes import machine, views
from streams.episodes.codec import decode_state, encode_entry, open_label
from streams.episodes.state import ChildState
from streams.kafka.decode import Rejection, decode_input


@dataclass
class Write:
    event: Any  # the consumed record whose partition the state belongs to
    state: ChildState
    due_at: datetime | None
    due_code: str | None

    def entry(self) -> bytes:
        return encode_entry(self.state, self.due_at, self.due_code)

    def open_label(self) -> tuple[str, str] | None:
        return open_label(self.state)


@dataclass
class Rejected:
    event: Any
    reason: str
    errors: list[dict[str, str]]
    event_type: str | None = None  # bounded metric label, decided at decode time
    payload: KeptPayload | None = None  # what the dead letter may keep of the value


@dataclass
class BatchResult:
    alerts: list[tuple[bytes, Alert]] = field(default_factory=list)
    records: list[tuple[bytes, EpisodeRecord]] = field(default_factory=list)
    writes: dict[bytes, Write] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    applied: int = 0
    opened: list[tuple[Any, str, bytes]] = field(default_factory=list)  # (event, code, child)
    # For metrics: applied events by type, and alert id -> (type, occurred_at) of the input
    # that fired it (escalation lateness counts from it when it made the step due).
    accepted: Counter[str] = field(default_factory=Counter)
    triggers: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    # Child key -> the input partition its records came from (the engine's partitions are the
    # events topic's, shared by due and profiles).
    partition_of: dict[bytes, int] = field(default_factory=dict)
    # Episode code -> (child key, its read-model summary; None deletes it): the duty desk's
    # episode-views table (streams/episodes/views.py). The latest of a batch wins.
    views: dict[str, tuple[bytes, bytes | None]] = field(default_factory=dict)


def process_batch(
    events: Iterable[Any],
    *,
    read: Callable[[bytes], bytes | None],
    policy: Policy,
    now: Callable[[], datetime],
    skew_tolerance: timedelta,
) -> BatchResult:
    """Apply each event in order; a child seen twice in a batch sees its own newer state."""
    result = BatchResult()
    states: dict[bytes, ChildState | None] = {}
    # What each child's state was built from in this batch, to rebuild it if an apply fails
    # half-way: apply mutates the state in place (reuse_state), so a failure can leave it torn.
    applied: dict[bytes, list[tuple[InputEvent, datetime]]] = {}
    for event in events:
        at = now()
        decoded = decode_input(event.key, event.value, now=at, skew_tolerance=skew_tolerance)
        if isinstance(decoded, Rejection):
            result.rejected.append(
                Rejected(event, decoded.reason, decoded.errors, decoded.event_type, decoded.payload)
            )
            continue
        key: bytes = event.key
        result.partition_of[key] = event.partition
        if isinstance(decoded, ChildProfile):
            wrong = _authority_mismatch(decoded, policy)
            if wrong is not None:
                result.rejected.append(
                    Rejected(
                        event,
                        "authority_mismatch",
                        [wrong],
                        decoded.type,
                        keep_payload(event.value),
                    )
                )
                continue
        try:
            if key not in states:
                raw = read(key)
                states[key] = decode_state(raw) if raw else None
            before = views.codes_of(states[key])
            new_state, effects = machine.apply(states[key], decoded, at, policy, reuse_state=True)
            due = machine.next_due(new_state, policy)
            _views(result, key, before, new_state, effects.records, policy, at)
        except Exception as exc:  # a bug must not stop the stream: park the event
            error = {"field": "(engine)", "message": type(exc).__name__}
            payload = keep_payload(event.value)
            result.rejected.append(Rejected(event, "engine_error", [error], decoded.type, payload))
            _rebuild(key, states, applied, result, read, policy)
            continue
        states[key] = new_state
        applied.setdefault(key, []).append((decoded, at))
        result.applied += 1
        result.accepted[decoded.type] += 1
        # Most events (check-ins of children with no episode) have no effects at all.
        for alert in effects.alerts:
            result.triggers[alert.alert_id] = (decoded.type, decoded.occurred_at)
            result.alerts.append((key, alert))
        for record in effects.records:
            result.records.append((key, record))
            if record.action == "opened":
                result.opened.append((event, record.episode_code, key))
        due_at, due_code = (due.at, due.episode_code) if due else (None, None)
        result.writes[key] = Write(event, new_state, due_at, due_code)
    return result


def _views(
    result: BatchResult,
    key: bytes,
    before: set[str],
    state: ChildState,
    records: list[EpisodeRecord],
    policy: Policy,
    at: datetime,
) -> None:
    changed, gone = views.touched(before, state, records)
    for episode in changed:
        summary = views.summarise(state, episode, policy, at)
        result.views[episode.code] = (key, summary.__pydantic_serializer__.to_json(summary))
    for code in gone:
        result.views[code] = (key, None)


def _authority_mismatch(profile: ChildProfile, policy: Policy) -> dict[str, str] | None:
    """A reference belongs to one authority (schemas/common.py): a profile may not claim a
    child of another, which is what let the first authority to profile a reference own it."""
    default = policy.rota.default_local_authority
    if authority_of(profile.child_ref, default) == profile.local_authority:
        return None
    return {
        "field": "local_authority",
        "message": "differs from the authority the child reference names "
        "(write '<reference>@<authority>' for a child of another authority)",
    }


def _rebuild(
    key: bytes,
    states: dict[bytes, ChildState | None],
    applied: dict[bytes, list[tuple[InputEvent, datetime]]],
    result: BatchResult,
    read: Callable[[bytes], bytes | None],
    policy: Policy,
) -> None:
    """Put the child's state back to what this batch's successful events made of it: the stored
    state, with those events applied again (apply is deterministic; their effects are already
    in ``result``). The failed event is left out, as if it had never arrived."""
    raw = read(key)
    state = decode_state(raw) if raw else None
    for earlier, at in applied.get(key, []):
        state, _ = machine.apply(state, earlier, at, policy, reuse_state=True)
    states[key] = state
    write = result.writes.get(key)
    if write is not None and state is not None:
        write.state = state
