"""How a child's state is stored in the episodes table: a one-line header, then the state JSON.

The header carries the next due time and the open episode code, so rebuilding the timer index
after a rebalance reads one short line per child instead of validating every full state. It also
carries the open episode's tier and category (``open``), so the same pass can recount the open
episodes gauge (telemetry.metrics.OpenEpisodes) without parsing the state.
"""

from __future__ import annotations

import json
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from streams.episodes.state import ChildState


def open_label(state: ChildState) -> tuple[str, str] | None:
    """(tier, category) of the child's open episode, or None."""
    episode = state.open_episode
    return (episode.tier.value, episode.category.value) if episode is not None else None


def encode_entry(state: ChildState, due_at: datetime | None, episode_code: str | None) -> bytes:
    # Written for every event, so built by hand: every part is a JSON-safe token (ISO time,
    # [A-Z2-9] code, enum values), which tests/unit/test_table_codec.py checks round-trips.
    label = open_label(state)
    header = (
        f'{{"due":{_quoted(due_at.isoformat() if due_at else None)},'
        f'"code":{_quoted(episode_code)},'
        f'"open":{f"[{_quoted(label[0])},{_quoted(label[1])}]" if label else "null"}}}'
    )
    return header.encode() + b"\n" + state.__pydantic_serializer__.to_json(state)


def _quoted(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def decode_header(value: bytes) -> tuple[datetime | None, str | None]:
    line, _, _ = value.partition(b"\n")
    header = json.loads(line)
    due = header.get("due")
    return (datetime.fromisoformat(due) if due else None), header.get("code")


def decode_state(value: bytes) -> ChildState:
    _, _, body = value.partition(b"\n")
    return ChildState.model_validate_json(body)


def decode_open(value: bytes) -> tuple[str, str] | None:
    """The ``open`` header field; entries written before it existed are read from the body."""
    line, _, body = value.partition(b"\n")
    header = json.loads(line)
    if "open" in header:
        found = header["open"]
    else:
        episode = json.loads(body).get("open_episode")
        found = [episode.get("tier"), episode.get("category")] if episode else None
    if not found:
        return None
    return str(found[0]), str(found[1])
