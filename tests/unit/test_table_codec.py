"""The episodes-table entry format (streams/episodes/codec.py): a hand-built JSON header
line, then the state. The header must be exactly what json.dumps would have said, whatever the
values."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from schemas.common import Category, RiskFlag
from streams.episodes.codec import decode_header, decode_open, decode_state, encode_entry
from streams.episodes.machine import Due, next_due
from streams.episodes.state import ChildState, Episode
from tests.unit.episode_helpers import (
    CHILD,
    T0,
    Driver,
    absence,
    hours,
    minutes,
    profile,
    returned,
    shipped_policy,
)


def open_state() -> ChildState:
    """A child with a profile and an open episode, as the machine leaves it."""
    driver = Driver()
    driver.send(profile(T0 - hours(24), flags=(RiskFlag.CSE,)), T0 - hours(24))
    driver.send(absence(T0, category=Category.AWAY), T0)
    assert driver.state is not None and driver.state.open_episode is not None
    return driver.state


def closed_state() -> ChildState:
    """A child whose only episode has been closed: nothing open, one recent episode."""
    driver = Driver()
    driver.send(absence(T0), T0)
    driver.send(returned(T0 + minutes(30), code=driver.code), T0 + minutes(30))
    assert driver.state is not None and driver.state.open_episode is None
    assert driver.state.recent_episodes
    return driver.state


def header_of(entry: bytes) -> object:
    line, newline, _ = entry.partition(b"\n")
    assert newline == b"\n"
    return json.loads(line)


def open_entry() -> tuple[ChildState, Episode, Due, bytes]:
    """A state with an open episode, its next due step, and the entry the engine stores."""
    state = open_state()
    episode = state.open_episode
    assert episode is not None
    due = next_due(state, shipped_policy())
    assert due is not None
    return state, episode, due, encode_entry(state, due.at, due.episode_code)


def test_header_of_an_open_episode_is_valid_json() -> None:
    _, episode, due, entry = open_entry()
    assert header_of(entry) == {
        "due": due.at.isoformat(),
        "code": episode.code,
        "open": [episode.tier.value, "away"],
    }


def test_header_without_an_open_episode_has_nulls() -> None:
    state = closed_state()
    assert header_of(encode_entry(state, None, None)) == {"due": None, "code": None, "open": None}


def test_header_with_due_but_nothing_open() -> None:
    # The header's due/code and open fields are independent: one may be set without the other.
    due_at = datetime.fromisoformat("2025-03-06T10:30:00.123456+00:00")
    entry = encode_entry(closed_state(), due_at, "ABC234")
    expected = {"due": "2025-03-06T10:30:00.123456+00:00", "code": "ABC234", "open": None}
    assert header_of(entry) == expected
    assert decode_header(entry) == (due_at, "ABC234")


def test_open_entry_round_trips() -> None:
    state, episode, due, entry = open_entry()
    assert decode_header(entry) == (due.at, episode.code)
    assert decode_state(entry) == state
    assert decode_open(entry) == (episode.tier.value, episode.category.value)


def test_closed_entry_round_trips() -> None:
    state = closed_state()
    entry = encode_entry(state, None, None)
    assert decode_header(entry) == (None, None)
    assert decode_state(entry) == state
    assert decode_open(entry) is None


@pytest.mark.parametrize(
    "code",
    ['QU"OTE', "BACK\\SLASH", 'both\\"', "new\nline", "tab\tand\x01ctl", "caf\u00e9 \u2028"],
)
def test_codes_needing_escapes_still_make_valid_json(code: str) -> None:
    entry = encode_entry(open_state(), T0, code)
    header = header_of(entry)
    assert isinstance(header, dict) and header["code"] == code
    assert decode_header(entry) == (T0, code)
    assert decode_state(entry).child_ref == CHILD  # the body is still where it belongs


def test_legacy_entry_without_open_field_reads_it_from_the_body() -> None:
    state = open_state()
    episode = state.open_episode
    assert episode is not None
    legacy = b'{"due":null,"code":null}\n' + state.model_dump_json().encode()
    assert decode_open(legacy) == (episode.tier.value, episode.category.value)
    closed = b'{"due":null,"code":null}\n' + closed_state().model_dump_json().encode()
    assert decode_open(closed) is None


def test_the_hot_path_writes_what_the_codec_writes() -> None:
    """encode_entry skips the codec's indirections for speed; it must not skip its format."""
    from streams.episodes.codec import STATE_CODEC, Entry

    state, due_at = ChildState(child_ref="C1"), T0
    entry = encode_entry(state, due_at, "ABC234")
    assert entry == STATE_CODEC.encode(Entry(state, due_at, "ABC234"))
    assert STATE_CODEC.decode(entry) == Entry(state, due_at, "ABC234")
