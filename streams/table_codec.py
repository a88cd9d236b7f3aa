"""How a child's state is stored in the episodes table: a one-line header, then the state JSON.

The header carries the next due time and the open episode code, so rebuilding the timer index
after a rebalance reads one short line per child instead of validating every full state.
"""

from __future__ import annotations

import json
from datetime import datetime

from streams.episodes.state import ChildState


def encode_entry(state: ChildState, due_at: datetime | None, episode_code: str | None) -> bytes:
    header = json.dumps(
        {"due": due_at.isoformat() if due_at else None, "code": episode_code},
        separators=(",", ":"),
    )
    return header.encode() + b"\n" + state.model_dump_json().encode()


def decode_header(value: bytes) -> tuple[datetime | None, str | None]:
    line, _, _ = value.partition(b"\n")
    header = json.loads(line)
    due = header.get("due")
    return (datetime.fromisoformat(due) if due else None), header.get("code")


def decode_state(value: bytes) -> ChildState:
    _, _, body = value.partition(b"\n")
    return ChildState.model_validate_json(body)
