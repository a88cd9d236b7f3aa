"""How a child's state is stored in the episodes table: a one-line header, then the state JSON
(the table codec of schemas/wire.py).

The header carries the next due time and the open episode code, so rebuilding the timer index
after a rebalance reads one short line per child instead of validating every full state. It also
carries the open episode's tier and category (``open``), so the same pass can recount the open
episodes gauge (telemetry.metrics.OpenEpisodes) without parsing the state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from schemas.wire import HeaderedCodec
from streams.episodes.state import ChildState


@dataclass(frozen=True, slots=True)
class Entry:
    """What the engine stores per child: the state and when it next falls due."""

    state: ChildState
    due_at: datetime | None
    due_code: str | None


def open_label(state: ChildState) -> tuple[str, str] | None:
    """(tier, category) of the child's open episode, or None."""
    episode = state.open_episode
    return (episode.tier.value, episode.category.value) if episode is not None else None


def _header(entry: Entry) -> bytes:
    return _header_of(entry.state, entry.due_at, entry.due_code).encode()


def _header_of(state: ChildState, due_at: datetime | None, code: str | None) -> str:
    # Written for every event, so built by hand: every part is a JSON-safe token (ISO time,
    # [A-Z2-9] code, enum values), which tests/unit/test_table_codec.py checks round-trips.
    label = open_label(state)
    return (
        f'{{"due":{_quoted(due_at.isoformat() if due_at else None)},'
        f'"code":{_quoted(code)},'
        f'"open":{f"[{_quoted(label[0])},{_quoted(label[1])}]" if label else "null"}}}'
    )


def _body(entry: Entry) -> bytes:
    return entry.state.__pydantic_serializer__.to_json(entry.state)


def _read(line: bytes, body: bytes) -> Entry:
    due, code = _due(json.loads(line))
    return Entry(ChildState.model_validate_json(body), due, code)


def _due(header: dict[str, object]) -> tuple[datetime | None, str | None]:
    due, code = header.get("due"), header.get("code")
    return (
        datetime.fromisoformat(due) if isinstance(due, str) else None,
        code if isinstance(code, str) else None,
    )


STATE_CODEC: HeaderedCodec[Entry] = HeaderedCodec(header=_header, body=_body, read=_read)


def encode_entry(state: ChildState, due_at: datetime | None, episode_code: str | None) -> bytes:
    """``STATE_CODEC.encode(Entry(...))`` without the indirections: it runs for every event."""
    line = _header_of(state, due_at, episode_code) + "\n"
    return line.encode() + state.__pydantic_serializer__.to_json(state)


def _quoted(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def decode_header(value: bytes) -> tuple[datetime | None, str | None]:
    return _due(STATE_CODEC.header_of(value))


def decode_state(value: bytes) -> ChildState:
    """The state alone (the hot path: no header parse)."""
    return ChildState.model_validate_json(STATE_CODEC.body_of(value))


def decode_open(value: bytes) -> tuple[str, str] | None:
    """The ``open`` header field; entries written before it existed are read from the body."""
    header = STATE_CODEC.header_of(value)
    if "open" in header:
        found = header["open"]
    else:
        episode = json.loads(STATE_CODEC.body_of(value)).get("open_episode")
        found = [episode.get("tier"), episode.get("category")] if episode else None
    if not found:
        return None
    return str(found[0]), str(found[1])
