"""What one engine batch sends, in order, and which state entries it stores once they are
durable. Pure: a batch result (streams/engine/batch.py) in, records out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.settings import Settings
from schemas.records import DeadLetter
from schemas.redaction import keep_payload
from schemas.wire import Codec, dumps
from streams.engine.batch import BatchResult, Rejected
from streams.engine.ports import Batch, InRecord
from streams.kafka.sending import OutRecord
from streams.kafka.topics import topic_specs
from telemetry.logging import get_logger

log = get_logger("missing_alerts.engine")


@dataclass(frozen=True)
class EngineTopics:
    events: str
    due: str
    profiles: str
    alerts: str
    episode_events: str
    dead_letters: str
    state_changelog: str  # the episodes state, compacted, co-partitioned with events
    codes_changelog: str  # Faust GlobalTable "episode-codes" (episode code -> child)
    views_changelog: str  # Faust GlobalTable "episode-views" (code -> read-model summary)
    # Each topic's codec (streams/kafka/topics.py); the default is our JSON wire format.
    codecs: Mapping[str, Codec[Any]] = field(default_factory=dict)

    def encode(self, topic: str, value: Any) -> bytes:
        codec = self.codecs.get(topic)
        return codec.encode(value) if codec is not None else dumps(value)

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.events, self.due, self.profiles)

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineTopics:
        specs = topic_specs(settings)
        return cls(
            events=specs["events"].name,
            due=specs["due"].name,
            profiles=specs["profiles"].name,
            alerts=specs["alerts"].name,
            episode_events=specs["episode_events"].name,
            dead_letters=specs["dead_letters"].name,
            state_changelog=specs["episodes_changelog"].name,
            codes_changelog=specs["codes_changelog"].name,
            views_changelog=specs["views_changelog"].name,
            codecs={spec.name: spec.codec for spec in specs.values()},
        )


def batch_output(
    result: BatchResult, topics: EngineTopics, now: datetime
) -> tuple[list[OutRecord], dict[int, dict[bytes, bytes | None]]]:
    """What one batch sends, in order (each child's new state last, after every effect it
    implies), and the state entries per partition to store once acknowledged. Every record
    names the input partition it derives from (``source``)."""
    part = result.partition_of
    out: list[OutRecord] = []
    for key, alert in result.alerts:
        out.append(
            OutRecord(topics.alerts, key, topics.encode(topics.alerts, alert), source=part[key])
        )
    for key, rec in result.records:
        value = topics.encode(topics.episode_events, rec)
        out.append(OutRecord(topics.episode_events, key, value, source=part[key]))
    for rej in result.rejected:
        out.append(_dead_letter(rej, topics, now))
    for event, code, child in result.opened:
        out.append(OutRecord(topics.codes_changelog, code.encode(), child, source=event.partition))
    for code, (child, summary) in result.views.items():
        out.append(OutRecord(topics.views_changelog, code.encode(), summary, source=part[child]))
    states: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
    for key, write in result.writes.items():
        partition = write.event.partition
        value = write.entry()
        states[partition][key] = value
        out.append(
            OutRecord(topics.state_changelog, key, value, partition=partition, source=partition)
        )
    return out, dict(states)


def _dead_letter(rej: Rejected, topics: EngineTopics, now: datetime) -> OutRecord:
    rec = rej.event
    log.warning(
        "input dead-lettered",
        reason=rej.reason,
        fields=[e["field"] for e in rej.errors],
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
    )
    letter = DeadLetter.of(
        occurred_at=now,
        key=rec.key,
        source_topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        reason=rej.reason,
        errors=rej.errors,
        payload=rej.payload or keep_payload(rec.value),
    )
    value = topics.encode(topics.dead_letters, letter)
    return OutRecord(topics.dead_letters, rec.key, value, source=rec.partition)


def by_source(
    records: Sequence[OutRecord], consumed: Mapping[int, Sequence[InRecord]]
) -> list[Batch]:
    """The batch cut along input partitions: each partition's records and the offsets they
    consume (a partition whose records produced nothing still commits its offsets)."""
    grouped: dict[int, list[OutRecord]] = {p: [] for p in consumed}
    for rec in records:
        grouped.setdefault(rec.source if rec.source is not None else -1, []).append(rec)
    batches = []
    for partition, recs in grouped.items():
        offsets: dict[tuple[str, int], int] = {}
        for seen in consumed.get(partition, ()):
            offsets[(seen.topic, seen.partition)] = seen.offset + 1
        batches.append(Batch(partition, recs, offsets))
    return batches
