"""batch_output (streams/engine/loop.py): what one processed batch sends, and which state
entries it stores per partition once Kafka has acknowledged them."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from schemas.common import RiskFlag
from schemas.records import DeadLetter
from schemas.wire import dumps
from streams.engine.batch import BatchResult, process_batch
from streams.engine.loop import EngineTopics, batch_output
from streams.episodes.codec import decode_header, decode_state
from streams.kafka.sending import OutRecord
from tests.support.records import FakeRecord
from tests.unit.episode_helpers import T0, absence, check_in, minutes, profile, shipped_policy

TOPICS = EngineTopics(
    events="t.events",
    due="t.due",
    profiles="t.profiles",
    alerts="t.alerts",
    episode_events="t.episode-events",
    dead_letters="t.dead-letters",
    state_changelog="t.state-changelog",
    codes_changelog="t.codes-changelog",
    views_changelog="t.views-changelog",
)
NOW = T0 + minutes(1)
BAD_VALUE = b'{"type": "absence", "child_ref": "BAD"'


def rec(event: Any, topic: str, partition: int, offset: int) -> FakeRecord:
    return FakeRecord(event.child_ref.encode(), dumps(event), topic, partition, offset)


def batch() -> tuple[list[FakeRecord], BatchResult]:
    records = [
        rec(profile(T0 - minutes(60), flags=(RiskFlag.CSE,), child="A1"), TOPICS.profiles, 0, 7),
        rec(absence(T0, child="A1"), TOPICS.events, 0, 40),
        rec(check_in(T0, child="B2"), TOPICS.events, 3, 12),
        FakeRecord(b"BAD", BAD_VALUE, TOPICS.events, 3, 13),
    ]
    result = process_batch(
        records,
        read=lambda key: None,
        policy=shipped_policy(),
        now=lambda: NOW,
        skew_tolerance=minutes(5),
    )
    # The scenario this file relies on: an alert, an opened episode, a dead letter, two writes.
    assert result.alerts and result.opened and len(result.rejected) == 1
    assert set(result.writes) == {b"A1", b"B2"}
    return records, result


def on(out: list[OutRecord], topic: str) -> list[OutRecord]:
    return [o for o in out if o.topic == topic]


def test_alerts_go_to_the_alerts_topic_keyed_by_child() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    alerts = on(out, TOPICS.alerts)
    assert len(alerts) == len(result.alerts)
    for sent, (key, alert) in zip(alerts, result.alerts, strict=True):
        assert sent.key == key == b"A1"
        assert sent.partition is None  # the producer partitions by key, like the inputs
        assert sent.value is not None
        body = json.loads(sent.value)
        assert body["alert_id"] == alert.alert_id and body["child_ref"] == "A1"


def test_episode_records_go_to_episode_events_keyed_by_child() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    sent = on(out, TOPICS.episode_events)
    assert [(o.key, json.loads(o.value or b"")["action"]) for o in sent] == [
        (key, r.action) for key, r in result.records
    ]
    assert "opened" in [r.action for _, r in result.records]


def test_dead_letter_names_its_source_record() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    (sent,) = on(out, TOPICS.dead_letters)
    assert sent.key == b"BAD"
    letter = DeadLetter.model_validate_json(sent.value or b"")
    assert (letter.source_topic, letter.partition, letter.offset) == (TOPICS.events, 3, 13)
    assert letter.reason == "invalid_event" and letter.errors
    assert letter.child_ref == "BAD"
    # Not JSON, so possibly a truncated profile: only its size and digest are kept.
    assert letter.payload == "" and letter.payload_redacted
    assert letter.payload_bytes == len(BAD_VALUE)
    assert letter.payload_sha256 == hashlib.sha256(BAD_VALUE).hexdigest()
    assert letter.occurred_at == NOW


def test_dead_letter_of_an_invalid_profile_keeps_errors_not_personal_values() -> None:
    """Finding 7 of issue #10: the dead-letter topic kept raw invalid profiles."""
    value = json.dumps(
        {
            "type": "profile",
            "child_ref": "P1",
            "occurred_at": NOW.isoformat(),
            "initials": "not initials",
            "date_of_birth": "2011-02-03",
            "local_authority": "LA-EXAMPLE",
            "full_name": "Jane Private",
            "address": "1 Hidden Lane",
            "medical_notes": "insulin",
            "surname": "Private",
        }
    ).encode()
    result = process_batch(
        [FakeRecord(b"P1", value, TOPICS.profiles, 0, 5)],
        read=lambda key: None,
        policy=shipped_policy(),
        now=lambda: NOW,
        skew_tolerance=timedelta(0),
    )
    out, _ = batch_output(result, TOPICS, NOW)
    (sent,) = on(out, TOPICS.dead_letters)
    text = (sent.value or b"").decode()
    for secret in ("Jane", "Hidden", "insulin", "Private", "2011-02-03"):
        assert secret not in text
    letter = DeadLetter.model_validate_json(sent.value or b"")
    assert {"profile.initials", "profile.surname"} <= {e["field"] for e in letter.errors}
    kept = json.loads(letter.payload)
    assert kept["type"] == "profile" and kept["initials"] == "not initials"
    assert kept["full_name"] == "[redacted]" and kept["surname"] == "[redacted]"


def test_dead_letter_of_an_unkeyed_record_is_unknown() -> None:
    bad = FakeRecord(None, b"not json", TOPICS.due, 1, 99)
    result = process_batch(
        [bad],
        read=lambda key: None,
        policy=shipped_policy(),
        now=lambda: NOW,
        skew_tolerance=timedelta(0),
    )
    out, states = batch_output(result, TOPICS, NOW)
    (sent,) = out
    letter = DeadLetter.model_validate_json(sent.value or b"")
    assert sent.topic == TOPICS.dead_letters and sent.key is None
    assert (letter.child_ref, letter.source_topic, letter.offset) == ("unknown", TOPICS.due, 99)
    assert states == {} and on(out, TOPICS.state_changelog) == []


def test_opened_episode_code_maps_to_its_child() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    episode = result.writes[b"A1"].state.open_episode
    assert episode is not None
    opened = [r for _, r in result.records if r.action == "opened"]
    assert [r.episode_code for r in opened] == [episode.code]
    assert on(out, TOPICS.codes_changelog) == [
        OutRecord(TOPICS.codes_changelog, episode.code.encode(), b"A1", source=0)
    ]


def test_each_touched_episode_gets_its_summary_on_the_views_changelog() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    episode = result.writes[b"A1"].state.open_episode
    assert episode is not None
    (sent,) = on(out, TOPICS.views_changelog)
    assert (sent.key, sent.source) == (episode.code.encode(), 0)
    summary = json.loads(sent.value)
    assert (summary["episode_code"], summary["child_ref"], summary["status"]) == (
        episode.code,
        "A1",
        "open",
    )


def test_a_profile_may_not_claim_another_authoritys_child() -> None:
    """Finding 5 of issue #10: the first authority to profile a reference owned it. A reference
    names its authority ('<ref>@<authority>', bare for the default one); a profile that
    disagrees is dead-lettered, and each authority's child keeps its own state."""
    other = profile(T0, child="U1").model_copy(update={"local_authority": "LA-OTHER"})
    ours = profile(T0, child="U1@LA-OTHER").model_copy(update={"local_authority": "LA-OTHER"})
    result = process_batch(
        [rec(other, TOPICS.profiles, 0, 1), rec(ours, TOPICS.profiles, 0, 2)],
        read=lambda key: None,
        policy=shipped_policy(),
        now=lambda: NOW,
        skew_tolerance=timedelta(0),
    )
    assert [(r.reason, r.errors[0]["field"]) for r in result.rejected] == [
        ("authority_mismatch", "local_authority")
    ]
    assert set(result.writes) == {b"U1@LA-OTHER"}


def test_every_changed_child_state_goes_to_its_input_partition() -> None:
    records, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    changelog = on(out, TOPICS.state_changelog)
    assert {(o.key, o.partition) for o in changelog} == {(b"A1", 0), (b"B2", 3)}
    assert len(changelog) == 2  # one per child, however many of its events were in the batch
    for o in changelog:
        assert o.key is not None and o.value is not None
        assert o.value == result.writes[o.key].entry()
        assert decode_state(o.value).child_ref == o.key.decode()
    a1 = next(o for o in changelog if o.key == b"A1")
    due_at, code = decode_header(a1.value or b"")
    assert due_at is not None and code == result.writes[b"A1"].due_code
    input_partition = {r.key: r.partition for r in records}
    assert all(o.partition == input_partition[o.key] for o in changelog)


def state_positions(out: list[OutRecord]) -> list[int]:
    return [i for i, o in enumerate(out) if o.topic == TOPICS.state_changelog]


def test_state_records_come_after_every_effect() -> None:
    _, result = batch()
    out, _ = batch_output(result, TOPICS, NOW)
    positions = state_positions(out)
    assert len(set(positions)) == len(positions) == 2
    # State comes after every effect it implies in the hand-off order.
    assert min(positions) == len(out) - 2


def test_states_per_partition_hold_the_changelog_bytes() -> None:
    _, result = batch()
    out, states = batch_output(result, TOPICS, NOW)
    assert set(states) == {0, 3}
    assert set(states[0]) == {b"A1"} and set(states[3]) == {b"B2"}
    for i in state_positions(out):
        sent = out[i]
        assert sent.partition is not None and sent.key is not None
        assert states[sent.partition][sent.key] == sent.value
