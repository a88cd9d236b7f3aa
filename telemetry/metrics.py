"""Every Prometheus metric of the pipeline, declared once, and the helpers that record them.

Why one module: names, help texts and label names are an interface (dashboards, alert rules and
runbooks depend on them), so they live in one place that tests can enumerate
(``exported_names``) and check the deploy files against.

Why a registry per ``Metrics`` object instead of the global one: tests and the benchmark build
several Faust apps in one process; each gets its own registry, so nothing collides and nothing
leaks between runs.

Why bounded labels only: child data is special-category personal data, and every label value
becomes a time series. Labels therefore hold only values from closed sets (event types, tiers,
categories, alert kinds, channels, outcomes, config-defined step ids, route templates, topic
names, partition numbers). Never a child reference, an episode code, a recipient, a phone number
or an address. ``bounded`` enforces the closed sets at run time.

With ``enabled=False`` every recording method returns at its first line, and the exposed
registry is empty: the benchmark measures the cost of instrumentation by switching it off.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

from config.policy import Role
from schemas.alerts import Alert, AlertKind, Channel
from schemas.common import Category, Tier
from schemas.events import InputEvent
from schemas.record_details import StepFiredDetail
from schemas.records import EpisodeRecord

# In the text format every counter and histogram would also expose a ``_created`` gauge per
# series: twice the series for a timestamp nothing here reads. Process-wide, set once.
disable_created_metrics()  # type: ignore[no-untyped-call]

NAMESPACE: Final = "missing_alerts"
# Faust's own sensor (faust.sensors.prometheus) is registered with this prefix on the same
# registry, so its names do not depend on the app id (tests run with a random one).
FAUST_PREFIX: Final = f"{NAMESPACE}_faust"


def _event_types() -> tuple[str, ...]:
    union = typing.get_args(InputEvent)[0]
    return tuple(str(model.model_fields["type"].default) for model in typing.get_args(union))


EVENT_TYPES: Final[tuple[str, ...]] = _event_types()
UNKNOWN: Final = "unknown"
INGEST_OUTCOMES: Final = ("accepted", "invalid", "dead_lettered")
NOTIFICATION_OUTCOMES: Final = (
    "sent",
    "delivered",
    "retried",
    "failed",
    "fallback",
    "deduplicated",
)
TIERS: Final = tuple(t.value for t in Tier)
CATEGORIES: Final = tuple(c.value for c in Category)
KINDS: Final = tuple(k.value for k in AlertKind)
CHANNELS: Final = tuple(c.value for c in Channel)
TIMERS: Final = ("escalation", "dispatch-retry", "retention")
TWILIO_CALLBACK_OUTCOMES: Final = (
    "accepted",
    "ignored",
    "bad_signature",
    "bad_request",
    "unavailable",
    "not_configured",
)
# Rejections from streams.kafka.decode (invalid input) versus a valid event the engine could
# not apply.
INVALID_REASONS: Final = frozenset(
    {
        "empty_value",
        "invalid_event",
        "missing_key",
        "key_mismatch",
        "occurred_at_in_future",
        "timestamp_in_future",
        "authority_mismatch",
    }
)
DEAD_LETTER_REASONS: Final = (
    *sorted(INVALID_REASONS),
    "engine_error",
    "invalid_dispatch_input",
    "dispatch_error",
    "render_failed",
    "undeliverable_no_address",
)
ROTA_GAP_KINDS: Final = ("slot_empty", "force_unknown", "no_address")
RETENTION_KINDS: Final = ("delivery", "notified")

# reported_at -> notifier hand-off. The first message of an episode should leave within
# milliseconds to seconds; later ladder steps are hours after the report, hence the long tail.
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip
# How late a step fired: the timer ticks every 0.25 s by default, so most land well under 1 s.
LATENESS_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
HTTP_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Names Faust's sensor exports (faust-streaming 0.15.3, FaustMetrics.create) that the dashboard
# and rules use; tests/unit/test_metrics.py checks them against a real FaustMetrics.
FAUST_METRIC_NAMES: Final = frozenset(
    {
        f"{FAUST_PREFIX}_messages_received_total",
        f"{FAUST_PREFIX}_total_rebalances",
        f"{FAUST_PREFIX}_topic_partition_end_offset",
        f"{FAUST_PREFIX}_topic_partition_offset_commited",
        f"{FAUST_PREFIX}_producer_send_latency_bucket",
        f"{FAUST_PREFIX}_total_error_messages_sent_total",
    }
)

_RENOTIFY_SUFFIX = re.compile(r"\+r\d+$")
_DELIVERY_FAILED_PREFIX = "delivery-failed-"
_LABEL_SAFE = re.compile(r"^[A-Za-z0-9_.:+/{}-]{1,100}$")


def bounded(value: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``unknown``: a label never grows a new series
    from input data."""
    return value if value in allowed else UNKNOWN


def step_label(step_id: str) -> str:
    """A step id fit for a label: ladder ids and reserved names are config-defined and bounded;
    re-notifies (``<step>+r<n>``) and delivery-failed follow-ups (which name a recipient) are
    folded into their bounded stem."""
    if step_id.startswith(_DELIVERY_FAILED_PREFIX):
        return "delivery-failed"
    stem = _RENOTIFY_SUFFIX.sub("", step_id)
    return stem if _LABEL_SAFE.match(stem) else UNKNOWN


def event_type_label(event_type: str | None) -> str:
    """The type a rejected record named, bounded; decided once where it was decoded
    (streams/kafka/decode.py), so no metric ever parses a rejected record again."""
    return bounded(event_type, EVENT_TYPES) if event_type else UNKNOWN


def ingest_outcome(reason: str) -> str:
    """A rejection is ``invalid`` (bad input, never applied) or ``dead_lettered`` (valid, but
    the engine failed on it). Both end on the dead-letter topic; the split tells an integrator's
    bug from ours."""
    return "invalid" if reason in INVALID_REASONS else "dead_lettered"


def notification_outcome(status: str) -> str:
    """Delivery-log status after an attempt -> outcome label."""
    if status in ("queued", "sent"):
        return "sent"
    if status == "retrying":
        return "retried"
    if status == "delivered":
        return "delivered"
    return "failed"


def receipt_outcome(status: str) -> str | None:
    """A provider receipt counts only when it says something an attempt did not: delivered, or
    failed after the provider had accepted the message."""
    if status == "delivered":
        return "delivered"
    if status in ("undelivered", "failed"):
        return "failed"
    return None


# Inputs that change when an episode's steps fall due (open, earlier last-seen, tier raise). A
# step they make due was not knowable before they arrived, so its lateness counts from them.
SCHEDULE_CHANGING: Final = frozenset({"absence", "update", "profile"})


def lateness_seconds(
    fired_at: datetime,
    due_at: datetime | None,
    trigger_type: str | None,
    trigger_at: datetime | None,
) -> float | None:
    """How late a step fired: ``fired_at - max(due_at, trigger_at)``.

    For steps fired by the timer (``TimerDue``) or by catch-up after an unrelated event, that is
    ``fired_at - due_at``: the timer's delay plus the Kafka round trip. For steps that an input
    made due retroactively (an absence reported after the first steps were already due, an
    earlier last-seen, a tier raise), the clock starts when that input occurred, because the
    engine could not have fired them sooner. None when the step has no due time (return notices).
    """
    if due_at is None:
        return None
    start = due_at
    if trigger_type in SCHEDULE_CHANGING and trigger_at is not None and trigger_at > start:
        start = trigger_at
    return max(0.0, (fired_at - start).total_seconds())


OpenLabel = tuple[str, str]  # (tier, category) of a child's open episode


class OpenEpisodes:
    """Open episodes per (tier, category) on this worker.

    Kept per child key, not as +1/-1 deltas from records: a replayed batch, a crash or a
    rebalance then cannot skew the count, because setting a child's open episode twice is the
    same as once. Every engine table write calls ``set``; the escalation timer's index rebuild
    (after each rebalance) calls ``reset`` and ``add`` for every child on the worker's active
    partitions, so a worker counts exactly the partitions it owns. Across workers, sum the gauge.
    """

    def __init__(self, gauge: Gauge | None, decode: Callable[[bytes], OpenLabel | None]) -> None:
        self._gauge = gauge
        self._decode = decode
        self._by_key: dict[bytes, OpenLabel] = {}
        self._counts: dict[OpenLabel, int] = {(t, c): 0 for t in TIERS for c in CATEGORIES}
        for label in self._counts:
            self._publish(label)

    def __len__(self) -> int:
        return len(self._by_key)

    def counts(self) -> dict[OpenLabel, int]:
        return dict(self._counts)

    def set(self, key: bytes, label: OpenLabel | None) -> None:
        old = self._by_key.get(key)
        if old == label:
            return
        if old is not None:
            del self._by_key[key]
            self._counts[old] -= 1
            self._publish(old)
        if label is not None:
            label = (bounded(label[0], TIERS), bounded(label[1], CATEGORIES))
            self._by_key[key] = label
            self._counts[label] = self._counts.get(label, 0) + 1
            self._publish(label)

    # The timer's rebuild observer (streams.runtime.timers.RebuildObserver).
    def reset(self) -> None:
        self._by_key.clear()
        for label in self._counts:
            self._counts[label] = 0
            self._publish(label)

    def add(self, key: bytes, value: bytes) -> None:
        self.set(key, self._decode(value))

    def _publish(self, label: OpenLabel) -> None:
        if self._gauge is not None:
            self._gauge.labels(tier=label[0], category=label[1]).set(self._counts[label])


class NoTracking:
    """Rebuild observer for a worker without metrics."""

    def reset(self) -> None:
        return None

    def add(self, key: bytes, value: bytes) -> None:
        return None


class EngineBatch(Protocol):
    """What ``observe_engine_batch`` reads from a streams.engine.batch.BatchResult."""

    @property
    def accepted(self) -> Mapping[str, int]: ...
    @property
    def rejected(self) -> typing.Sequence[RejectedLike]: ...
    @property
    def alerts(self) -> typing.Sequence[tuple[bytes, Alert]]: ...
    @property
    def records(self) -> typing.Sequence[tuple[bytes, EpisodeRecord]]: ...
    @property
    def triggers(self) -> Mapping[str, tuple[str, datetime]]: ...
    @property
    def writes(self) -> Mapping[bytes, WriteLike]: ...


class WriteLike(Protocol):
    def open_label(self) -> OpenLabel | None: ...


class RejectedLike(Protocol):
    @property
    def reason(self) -> str: ...
    @property
    def event_type(self) -> str | None: ...


class Metrics:
    """The pipeline's metrics on their own registry; ``Metrics(enabled=False)`` records nothing.

    ``registry`` is what ``/metrics`` exposes (empty when disabled). Faust's own sensor is
    attached to the same registry by streams.web.metrics.
    """

    def __init__(self, *, enabled: bool = True, registry: CollectorRegistry | None = None) -> None:
        self.enabled = enabled
        self.registry = registry if registry is not None else CollectorRegistry()
        # Disabled: declare on a private registry nobody scrapes, so attribute access stays
        # typed and the recording methods can return before touching them.
        reg = self.registry if enabled else CollectorRegistry()
        ns = NAMESPACE
        self.events_ingested = Counter(
            f"{ns}_events_ingested",
            "Input records seen by the engine, by event type and outcome: accepted (applied), "
            "invalid (failed validation, dead-lettered) or dead_lettered (valid, engine failed).",
            ["type", "outcome"],
            registry=reg,
        )
        self.dead_letters = Counter(
            f"{ns}_dead_letters",
            "Records sent to the dead-letter topic, by stage (engine, dispatch) and reason.",
            ["stage", "reason"],
            registry=reg,
        )
        self.episode_records = Counter(
            f"{ns}_episode_records",
            "Episode audit records emitted (opened, closed, step_fired, ...), by action.",
            ["action"],
            registry=reg,
        )
        self.open_episodes_gauge = Gauge(
            f"{ns}_open_episodes",
            "Open episodes on this worker's partitions, by tier and category (sum over workers).",
            ["tier", "category"],
            registry=reg,
        )
        self.escalations = Counter(
            f"{ns}_escalations",
            "Alerts decided by the engine (ladder steps, re-notifies, return notices, ...), by "
            "tier, alert kind and step id (re-notify numbers stripped).",
            ["tier", "kind", "step"],
            registry=reg,
        )
        self.escalation_lateness = Histogram(
            f"{ns}_escalation_lateness_seconds",
            "How late a step fired: fired at minus max(due at, time the input that made it due "
            "occurred). Zero is on time.",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=reg,
        )
        self.notifications = Counter(
            f"{ns}_notifications",
            "Notifications per channel and outcome: sent (provider accepted), delivered "
            "(receipt), retried, failed, fallback (other channel sent), deduplicated (skipped: "
            "already in the notification log).",
            ["channel", "outcome"],
            registry=reg,
        )
        self.alert_latency = Histogram(
            f"{ns}_alert_latency_seconds",
            "Absence reported (alert reported_at) to notifier hand-off of a notification's first "
            "attempt. kind=absence_reported is the end-to-end latency of the first message.",
            ["channel", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.dispatch_latency = Histogram(
            f"{ns}_dispatch_latency_seconds",
            "Alert decided by the engine (alert occurred_at) to notifier hand-off of the first "
            "attempt: the dispatch stage alone.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.consumer_lag = Gauge(
            f"{ns}_consumer_lag",
            "Records behind the end of each assigned input partition (end offset minus the "
            "consumer position), refreshed on a timer.",
            ["topic", "partition"],
            registry=reg,
        )
        self.http_requests = Counter(
            f"{ns}_http_requests",
            "Requests to the worker's web server, by route template, method and status.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_duration = Histogram(
            f"{ns}_http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=reg,
        )
        self.timer_index_entries = Gauge(
            f"{ns}_timer_index_entries",
            "Entries in a durable timer's in-memory due index (escalation, dispatch-retry).",
            ["timer"],
            registry=reg,
        )
        self.timer_due_emitted = Counter(
            f"{ns}_timer_due_emitted",
            "Due events a timer emitted (TimerDue, RetryDue).",
            ["timer"],
            registry=reg,
        )
        self.timer_rebuilds = Counter(
            f"{ns}_timer_rebuilds",
            "Rebuilds of a timer's index from its table (after every rebalance).",
            ["timer"],
            registry=reg,
        )
        self.twilio_callbacks = Counter(
            f"{ns}_twilio_callbacks",
            "Twilio status callbacks, by outcome (bad_signature may mean forged requests).",
            ["outcome"],
            registry=reg,
        )
        self.rota_gaps = Counter(
            f"{ns}_rota_gaps",
            "Alerts that met an empty rota slot (fallback contact used) or a person with no "
            "address for a channel, by role and kind.",
            ["role", "kind"],
            registry=reg,
        )
        self.config_reloads = Counter(
            f"{ns}_config_reloads",
            "Rota and API-key files found changed while running, by file and outcome (applied, "
            "or refused with the old one kept).",
            ["kind", "outcome"],
            registry=reg,
        )
        self.retention_deleted_total = Counter(
            f"{ns}_retention_deleted",
            "Records deleted (tombstoned) because they outlived their retention: delivery "
            "records with phone numbers and message bodies (docs/privacy.md).",
            ["kind"],
            registry=reg,
        )
        self._open: OpenEpisodes | None = None
        if enabled:
            self._zero_known_series()
            # process_start_time_seconds (the "no events" rule), resident memory, CPU, fds.
            ProcessCollector(registry=self.registry)

    @classmethod
    def disabled(cls) -> Metrics:
        return cls(enabled=False)

    def _zero_known_series(self) -> None:
        """Create every series whose labels are known up front, at 0, so ``rate`` and
        ``increase`` see the first event and "no events for 6 h" rules have a series to test."""
        for t in EVENT_TYPES:
            for o in INGEST_OUTCOMES:
                self.events_ingested.labels(type=t, outcome=o)
        for ch in CHANNELS:
            for o in NOTIFICATION_OUTCOMES:
                self.notifications.labels(channel=ch, outcome=o)
        for name in TIMERS:
            self.timer_index_entries.labels(timer=name)
            self.timer_due_emitted.labels(timer=name)
            self.timer_rebuilds.labels(timer=name)
        for outcome in TWILIO_CALLBACK_OUTCOMES:
            self.twilio_callbacks.labels(outcome=outcome)
        for kind in ("rota", "api_keys"):
            for outcome in ("applied", "refused"):
                self.config_reloads.labels(kind=kind, outcome=outcome)

    # -- engine -----------------------------------------------------------------------------

    def open_episode_tracker(
        self, decode: Callable[[bytes], OpenLabel | None]
    ) -> OpenEpisodes | NoTracking:
        """The worker's open-episode tracker, also the escalation timer's rebuild observer
        (created on first call; ``decode`` reads a child's open episode from a table value)."""
        if not self.enabled:
            return NoTracking()
        if self._open is None:
            self._open = OpenEpisodes(self.open_episodes_gauge, decode)
        return self._open

    def observe_engine_batch(self, batch: EngineBatch) -> None:
        """Count one engine batch: inputs by type and outcome, dead letters, records by action,
        alerts by tier/kind/step, each step's lateness, and the open episodes it wrote."""
        if not self.enabled:
            return
        if self._open is not None:
            for key, write in batch.writes.items():
                self._open.set(key, write.open_label())
        for event_type, n in batch.accepted.items():
            self.events_ingested.labels(
                type=bounded(event_type, EVENT_TYPES), outcome="accepted"
            ).inc(n)
        for rej in batch.rejected:
            outcome = ingest_outcome(rej.reason)
            self.events_ingested.labels(
                type=event_type_label(rej.event_type), outcome=outcome
            ).inc()
            self.dead_letters.labels(
                stage="engine", reason=bounded(rej.reason, DEAD_LETTER_REASONS)
            ).inc()
        due: dict[str, datetime | None] = {}
        for _key, record in batch.records:
            self.episode_records.labels(action=record.action).inc()
            if isinstance(record.detail, StepFiredDetail):
                due[record.detail.alert_id] = record.detail.due_at
        for _key, alert in batch.alerts:
            kind = alert.kind.value
            self.escalations.labels(
                tier=alert.tier.value, kind=kind, step=step_label(alert.step_id)
            ).inc()
            trigger_type, trigger_at = batch.triggers.get(alert.alert_id, (None, None))
            late = lateness_seconds(
                alert.occurred_at, due.get(alert.alert_id), trigger_type, trigger_at
            )
            if late is not None:
                self.escalation_lateness.labels(kind=kind).observe(late)

    # -- dispatch ---------------------------------------------------------------------------

    def notification(self, channel: str, outcome: str) -> None:
        if self.enabled:
            self.notifications.labels(
                channel=bounded(channel, CHANNELS), outcome=bounded(outcome, NOTIFICATION_OUTCOMES)
            ).inc()

    def handed_off(self, alert: Alert, channel: str, now: datetime) -> None:
        """A notification's first attempt is being handed to its notifier."""
        if not self.enabled:
            return
        ch = bounded(channel, CHANNELS)
        self.alert_latency.labels(channel=ch, kind=alert.kind.value).observe(
            max(0.0, (now - alert.reported_at).total_seconds())
        )
        self.dispatch_latency.labels(channel=ch).observe(
            max(0.0, (now - alert.occurred_at).total_seconds())
        )

    def rota_gap(self, role: str, kind: str) -> None:
        if self.enabled:
            role_label = bounded(role, [*(r.value for r in Role), "named"])
            self.rota_gaps.labels(role=role_label, kind=bounded(kind, ROTA_GAP_KINDS)).inc()

    def retention_deleted(self, kind: str) -> None:
        if self.enabled:
            self.retention_deleted_total.labels(kind=bounded(kind, RETENTION_KINDS)).inc()

    def dead_letter(self, stage: str, reason: str) -> None:
        if self.enabled:
            self.dead_letters.labels(stage=stage, reason=bounded(reason, DEAD_LETTER_REASONS)).inc()

    # -- timers, web, consumer ----------------------------------------------------------------

    def timer_tick(self, timer: str, index_size: int, emitted: int) -> None:
        if not self.enabled:
            return
        name = bounded(timer, TIMERS)
        self.timer_index_entries.labels(timer=name).set(index_size)
        if emitted:
            self.timer_due_emitted.labels(timer=name).inc(emitted)

    def timer_rebuilt(self, timer: str) -> None:
        if self.enabled:
            self.timer_rebuilds.labels(timer=bounded(timer, TIMERS)).inc()

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """``route`` must be the route TEMPLATE (``/v1/deliveries/{notification_id}``), never
        the raw path, which would carry ids."""
        if not self.enabled:
            return
        self.http_requests.labels(route=route, method=method.upper(), status=str(status)).inc()
        self.http_duration.labels(route=route).observe(seconds)

    def twilio_callback(self, outcome: str) -> None:
        if self.enabled:
            self.twilio_callbacks.labels(outcome=bounded(outcome, TWILIO_CALLBACK_OUTCOMES)).inc()

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace every lag series at once: partitions revoked since the last refresh vanish."""
        if not self.enabled:
            return
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)


def consumer_lag(
    ends: Mapping[tuple[str, int], int | None], positions: Mapping[tuple[str, int], int | None]
) -> dict[tuple[str, int], int]:
    """End offset minus position per partition; partitions with either unknown are left out
    (no series is better than a wrong zero)."""
    out: dict[tuple[str, int], int] = {}
    for tp, end in ends.items():
        pos = positions.get(tp)
        if end is None or pos is None:
            continue
        out[tp] = max(0, end - pos)
    return out


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose, labelled or not, e.g. ``x_total`` and
    ``x_created`` for a counter ``x``; used to check rules and dashboards against the code.
    A labelled metric with no series yet still yields its family (name and type) here."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
