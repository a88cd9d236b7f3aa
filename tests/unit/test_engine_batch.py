from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_policy
from config.settings import POLICY_DIR
from schemas.common import RiskFlag
from schemas.wire import dumps
from streams.engine.batch import process_batch
from streams.engine.loop import EngineTopics, batch_output
from streams.episodes.codec import decode_header, decode_state
from telemetry.metrics import Metrics
from tests.support import events as ev

POLICY = load_policy(POLICY_DIR)


def record(event: Any, key: bytes | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        key=key if key is not None else event.child_ref.encode(),
        value=dumps(event),
        topic="t.events",
        partition=0,
        offset=0,
    )


def run(events: list[SimpleNamespace], table: dict[bytes, bytes]) -> Any:
    return process_batch(
        events,
        read=table.get,
        policy=POLICY,
        now=lambda: datetime.now(UTC),
        skew_tolerance=timedelta(minutes=5),
    )


def test_same_child_twice_in_a_batch_sees_its_own_newer_state() -> None:
    table: dict[bytes, bytes] = {}
    absence = ev.absence("B1", flags=frozenset({RiskFlag.CSE}))
    result = run([record(ev.profile("B1")), record(absence)], table)
    code = result.alerts[0][1].episode_code
    second = run(
        [record(ev.ack("B1", code)), record(ev.returned("B1", code))],
        {k: w.entry() for k, w in result.writes.items()},
    )
    assert [a.step_id for _, a in second.alerts] == ["returned"]
    actions = [r.action for _, r in second.records]
    assert actions == ["acknowledged", "closed", "step_fired"]  # the return notice


def test_one_write_per_child_with_due_header() -> None:
    events = [record(ev.profile(c)) for c in ("A", "B")] + [
        record(ev.absence(c, flags=frozenset({RiskFlag.CSE}))) for c in ("A", "B")
    ]
    result = run(events, {})
    assert set(result.writes) == {b"A", b"B"} and result.applied == 4
    entry = result.writes[b"A"].entry()
    due, code = decode_header(entry)
    state = decode_state(entry)
    assert state.open_episode is not None and code == state.open_episode.code
    assert due is not None and due > state.open_episode.last_seen_at  # next step: T+30m


def test_bad_records_are_rejected_and_the_rest_applied() -> None:
    good = ev.absence("G1")
    bad = SimpleNamespace(key=b"G1", value=b"{", message=SimpleNamespace(partition=0))
    mismatched = record(ev.absence("G2"), key=b"OTHER")
    result = run([bad, record(good), mismatched], {})
    assert [r.reason for r in result.rejected] == ["invalid_event", "key_mismatch"]
    assert result.applied == 1 and b"G1" in result.writes


def test_an_apply_that_fails_half_way_leaves_no_torn_state(monkeypatch: Any) -> None:
    """apply mutates the state in place; an engine error part-way through one event must not
    leak into what is written: the child's state is what its successful events made of it."""
    from streams.episodes import machine

    first = ev.absence("T1", flags=frozenset({RiskFlag.CSE}))
    again = ev.absence("T1", flags=frozenset({RiskFlag.CSE}))  # while open: an update

    def absorb_then_fail(run_: Any, *args: Any, **kwargs: Any) -> None:
        run_.state.seen_event_ids.append("torn")  # a half-done change...
        run_.state.last_seen_at = datetime(2099, 1, 1, tzinfo=UTC)
        assert run_.state.open_episode is not None
        run_.state.open_episode.fired["torn-step"] = datetime(2099, 1, 1, tzinfo=UTC)
        raise RuntimeError("bug")  # ...then the bug

    monkeypatch.setattr(machine, "_absorb", absorb_then_fail)
    result = run([record(first), record(again)], {})
    assert [r.reason for r in result.rejected] == ["engine_error"]
    state = result.writes[b"T1"].state
    assert state.seen_event_ids == [first.event_id.hex[:16]]
    assert state.last_seen_at is None
    assert state.open_episode is not None and "torn-step" not in state.open_episode.fired
    assert state.open_episode.code == result.alerts[0][1].episode_code
    assert decode_state(result.writes[b"T1"].entry()) == state


# ------------------------------------------------------------------ property: isolation

_T = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
TOPICS = EngineTopics(*(f"t.{n}" for n in range(9)))
_GOOD = [
    ev_
    for c in ("G1", "G2", "G3")
    for ev_ in (
        ev.profile(c).model_copy(update={"occurred_at": _T - timedelta(hours=1)}),
        ev.absence(c, flags=frozenset({RiskFlag.CSE})).model_copy(
            update={"occurred_at": _T, "last_seen_at": _T - timedelta(minutes=5)}
        ),
    )
]


def _hostile(value: bytes, key: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(key=key, value=value, topic="t.events", partition=0, offset=0)


_hostile_records = st.builds(
    _hostile,
    st.one_of(
        st.binary(max_size=200),
        st.integers(1, 2000).map(lambda n: b"[" * n),
        st.builds(
            lambda when, text: json.dumps(
                {
                    "type": "absence",
                    "child_ref": "H1",
                    "occurred_at": when,
                    "last_seen_at": when,
                    "reporter": {"role": "carer", "organisation": text},
                }
            ).encode(),
            st.sampled_from(
                ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2026-11-28T22:00:00Z"]
            ),
            st.text(max_size=300),
        ),
    ),
    st.one_of(st.none(), st.just(b"H1"), st.binary(max_size=80)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_hostile_records, max_size=8), st.randoms(use_true_random=False))
def test_no_record_changes_another_childs_outcome(
    hostile: list[SimpleNamespace], rnd: random.Random
) -> None:
    """Whatever else a batch holds, the good children's alerts and states are the same, and
    the whole output (dead letters, metrics) is built without raising."""

    def outcome(records: list[SimpleNamespace]) -> tuple[list[str], dict[bytes, bytes]]:
        result = process_batch(
            records,
            read=lambda _k: None,
            policy=POLICY,
            now=lambda: _T,
            skew_tolerance=timedelta(minutes=5),
        )
        batch_output(result, TOPICS, _T)
        Metrics().observe_engine_batch(result)
        alerts = sorted(a.alert_id for k, a in result.alerts if k.startswith(b"G"))
        states = {k: w.entry() for k, w in result.writes.items() if k.startswith(b"G")}
        return alerts, states

    good = [_hostile(dumps(e), e.child_ref.encode()) for e in _GOOD]
    alone = outcome(good)
    mixed = list(good)
    for rec in hostile:  # anywhere, keeping each good child's own order
        mixed.insert(rnd.randint(0, len(mixed)), rec)
    assert outcome(mixed) == alone
    assert len(alone[0]) == 3
