"""telemetry.metrics: bounded labels, the pure helpers, and one engine batch counted end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from config import load_policy
from config.settings import POLICY_DIR
from schemas.common import RiskFlag
from schemas.wire import dumps
from streams.engine.batch import process_batch
from streams.episodes.codec import decode_open, encode_entry
from streams.kafka.decode import Rejection, decode_input
from streams.kafka.partitioning import partition_for
from streams.runtime.timers import TimerState, rebuild
from telemetry.metrics import (
    EVENT_TYPES,
    FAUST_METRIC_NAMES,
    FAUST_PREFIX,
    Metrics,
    OpenEpisodes,
    consumer_lag,
    event_type_label,
    exported_names,
    ingest_outcome,
    lateness_seconds,
    notification_outcome,
    receipt_outcome,
    step_label,
)
from tests.support import events as ev
from tests.support.records import FakeRecord
from tests.unit.episode_helpers import shipped_policy

POLICY = load_policy(POLICY_DIR)
T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return samples(registry).get((name, frozenset(labels.items())), 0.0)


def test_step_labels_fold_unbounded_suffixes() -> None:
    assert step_label("high-t30m") == "high-t30m"
    assert step_label("high-t30m+r12") == "high-t30m"  # re-notify number stripped
    assert step_label("tier-raised-high") == "tier-raised-high"
    assert step_label("delivery-failed-high-t0-pl-1-sms") == "delivery-failed"  # names a person
    assert step_label("bad label with spaces") == "unknown"


def _rejected_type(value: bytes | None) -> str:
    out = decode_input(b"C1", value, now=T0, skew_tolerance=timedelta(0))
    assert isinstance(out, Rejection)
    return event_type_label(out.event_type)


def test_event_type_of_rejected_records_is_bounded() -> None:
    assert _rejected_type(json.dumps({"type": "absence", "child_ref": 1}).encode()) == "absence"
    assert _rejected_type(b'{"type": "Jane Doe"}') == "unknown"
    assert _rejected_type(b"not json") == "unknown"
    assert _rejected_type(b"[1, 2]") == "unknown"
    assert _rejected_type(None) == "unknown"
    assert set(EVENT_TYPES) >= {"absence", "check_in", "timer_due", "acknowledgement"}


def test_deeply_nested_record_is_counted_without_parsing_it_again() -> None:
    """Finding 2 of issue #10: 60,000 '[' were dead-lettered, then a metrics helper parsed the
    record again with json.loads, hit RecursionError and took the engine down."""
    result = process_batch(
        [FakeRecord(b"C1", b"[" * 60_000, "t.events", 0, 1)],
        read=lambda key: None,
        policy=shipped_policy(),
        now=lambda: T0,
        skew_tolerance=timedelta(0),
    )
    metrics = Metrics()
    metrics.observe_engine_batch(result)  # raised RecursionError before
    ingested = "missing_alerts_events_ingested_total"
    assert value(metrics.registry, ingested, type="unknown", outcome="invalid") == 1


def test_outcome_mappings() -> None:
    assert ingest_outcome("invalid_event") == "invalid"
    assert ingest_outcome("key_mismatch") == "invalid"
    assert ingest_outcome("engine_error") == "dead_lettered"
    assert [notification_outcome(s) for s in ("queued", "sent", "retrying", "failed")] == [
        "sent",
        "sent",
        "retried",
        "failed",
    ]
    assert receipt_outcome("delivered") == "delivered"
    assert receipt_outcome("undelivered") == "failed"
    assert receipt_outcome("sent") is None  # the attempt already counted it


def test_lateness_counts_from_due_or_from_the_input_that_made_the_step_due() -> None:
    due = T0
    # Timer path: the timer's delay is the lateness.
    assert lateness_seconds(T0 + timedelta(seconds=2), due, "timer_due", T0 + timedelta(1)) == 2
    # An absence reported 40 minutes after last seen: the T+0 step was "due" at last seen, but
    # nobody could know before the report; lateness counts from the report.
    reported = T0 + timedelta(minutes=40)
    fired = reported + timedelta(milliseconds=150)
    assert lateness_seconds(fired, due, "absence", reported) == 0.15
    # A check-in arriving while the timer lagged: the step was knowable at its due time.
    assert lateness_seconds(fired, due, "check_in", reported) == 40 * 60 + 0.15
    assert lateness_seconds(fired, None, "return", reported) is None
    assert lateness_seconds(T0, T0 + timedelta(seconds=1), "timer_due", None) == 0.0


def test_open_episodes_are_set_per_child_so_replays_do_not_skew_them() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry=registry)
    tracker = m.open_episode_tracker(decode_open)
    assert isinstance(tracker, OpenEpisodes)
    tracker.set(b"C1", ("high", "missing"))
    tracker.set(b"C1", ("high", "missing"))  # the same write replayed
    tracker.set(b"C2", ("standard", "away"))
    tracker.set(b"C2", ("high", "away"))  # tier raised
    assert tracker.counts()[("high", "missing")] == 1
    assert tracker.counts()[("standard", "away")] == 0
    assert value(registry, "missing_alerts_open_episodes", tier="high", category="away") == 1
    tracker.set(b"C1", None)  # returned
    assert value(registry, "missing_alerts_open_episodes", tier="high", category="missing") == 0
    assert len(tracker) == 1


def test_timer_rebuild_recounts_open_episodes_of_active_partitions_only() -> None:
    policy_result = process_batch(
        [_record(ev.profile(child)) for child in ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8")]
        + [
            _record(ev.absence(child, flags=frozenset({RiskFlag.CSE})))
            for child in ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8")
        ],
        read=lambda _k: None,
        policy=POLICY,
        now=lambda: datetime.now(UTC),
        skew_tolerance=timedelta(minutes=5),
    )
    table = {k: w.entry() for k, w in policy_result.writes.items()}
    registry = CollectorRegistry()
    m = Metrics(registry=registry)
    tracker = m.open_episode_tracker(decode_open)
    assert isinstance(tracker, OpenEpisodes)
    tracker.set(b"GONE", ("standard", "missing"))  # a child of a revoked partition
    state = TimerState("escalation", metrics=m, observer=tracker)

    def header(key: bytes, _value: bytes) -> tuple[bytes, datetime | None, str | None]:
        return key, None, None

    rebuild(state, table.items(), active_partitions={0}, partitions=2, header=header)
    on_zero = sum(1 for k in table if partition_for(k, 2) == 0)
    assert 0 < on_zero < len(table)
    assert sum(tracker.counts().values()) == on_zero
    assert tracker.counts()[("standard", "missing")] == 0
    assert value(registry, "missing_alerts_timer_rebuilds_total", timer="escalation") == 1


def test_open_label_is_read_from_the_header_and_from_legacy_entries() -> None:
    result = process_batch(
        [_record(ev.profile("H1")), _record(ev.absence("H1", flags=frozenset({RiskFlag.CSE})))],
        read=lambda _k: None,
        policy=POLICY,
        now=lambda: datetime.now(UTC),
        skew_tolerance=timedelta(minutes=5),
    )
    write = result.writes[b"H1"]
    entry = write.entry()
    assert decode_open(entry) == write.open_label() and write.open_label() is not None
    header, _, body = entry.partition(b"\n")
    legacy = json.dumps({k: v for k, v in json.loads(header).items() if k != "open"}).encode()
    assert decode_open(legacy + b"\n" + body) == write.open_label()
    closed = encode_entry(write.state.model_copy(update={"open_episode": None}), None, None)
    assert decode_open(closed) is None


def test_consumer_lag_leaves_out_unknowns() -> None:
    ends: dict[tuple[str, int], int | None] = {("t", 0): 10, ("t", 1): 5, ("t", 2): None}
    positions: dict[tuple[str, int], int | None] = {("t", 0): 4, ("t", 1): 7, ("t", 2): 1}
    assert consumer_lag(ends, positions) == {("t", 0): 6, ("t", 1): 0}
    registry = CollectorRegistry()
    m = Metrics(registry=registry)
    m.set_consumer_lag({("t", 0): 6, ("t", 1): 0})
    m.set_consumer_lag({("t", 1): 3})  # partition 0 revoked: its series goes away
    lags = {k: v for k, v in samples(registry).items() if k[0] == "missing_alerts_consumer_lag"}
    assert lags == {
        ("missing_alerts_consumer_lag", frozenset({("topic", "t"), ("partition", "1")})): 3
    }


def _record(event: Any, key: bytes | None = None, value: bytes | None = None) -> Any:
    return SimpleNamespace(
        key=key if key is not None else event.child_ref.encode(),
        value=value if value is not None else dumps(event),
        topic="t.events",
        partition=0,
        offset=0,
    )


def test_one_engine_batch_counted_without_personal_data_in_labels() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry=registry)
    m.open_episode_tracker(decode_open)
    secret = "Jane Example-Private"
    profile = ev.profile("CHILD42", full_name=secret)
    bad = _record(profile, value=b'{"type": "absence", "child_ref": "CHILD42"}')
    result = process_batch(
        [_record(profile), _record(ev.absence("CHILD42", flags=frozenset({RiskFlag.CSE}))), bad],
        read=lambda _k: None,
        policy=POLICY,
        now=lambda: datetime.now(UTC),
        skew_tolerance=timedelta(minutes=5),
    )
    m.observe_engine_batch(result)
    code = result.alerts[0][1].episode_code
    assert (
        value(registry, "missing_alerts_events_ingested_total", type="absence", outcome="accepted")
        == 1
    )
    assert (
        value(registry, "missing_alerts_events_ingested_total", type="profile", outcome="accepted")
        == 1
    )
    assert (
        value(registry, "missing_alerts_events_ingested_total", type="absence", outcome="invalid")
        == 1
    )
    assert (
        value(registry, "missing_alerts_dead_letters_total", stage="engine", reason="invalid_event")
        == 1
    )
    assert value(registry, "missing_alerts_episode_records_total", action="opened") == 1
    step = result.alerts[0][1].step_id
    tier = result.alerts[0][1].tier.value
    assert (
        value(
            registry,
            "missing_alerts_escalations_total",
            tier=tier,
            kind="absence_reported",
            step=step,
        )
        == 1
    )
    assert (
        value(registry, "missing_alerts_escalation_lateness_seconds_count", kind="absence_reported")
        == 1
    )
    assert (
        value(registry, "missing_alerts_escalation_lateness_seconds_sum", kind="absence_reported")
        < 5
    )
    assert value(registry, "missing_alerts_open_episodes", tier=tier, category="missing") == 1
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for label_value in s.labels.values():
                assert "CHILD42" not in label_value and code not in label_value
                assert secret not in label_value


def test_dispatch_and_web_helpers() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry=registry)
    alert = SimpleNamespace(
        kind=SimpleNamespace(value="absence_reported"),
        reported_at=T0,
        occurred_at=T0 + timedelta(seconds=1),
    )
    m.handed_off(alert, "sms", T0 + timedelta(seconds=1.5))  # type: ignore[arg-type]
    m.notification("sms", "sent")
    m.notification("sms", "not-an-outcome")
    m.http_request("/v1/deliveries/{notification_id}", "get", 404, 0.002)
    m.twilio_callback("bad_signature")
    assert (
        value(
            registry,
            "missing_alerts_alert_latency_seconds_sum",
            channel="sms",
            kind="absence_reported",
        )
        == 1.5
    )
    assert value(registry, "missing_alerts_dispatch_latency_seconds_sum", channel="sms") == 0.5
    assert value(registry, "missing_alerts_notifications_total", channel="sms", outcome="sent") == 1
    assert (
        value(registry, "missing_alerts_notifications_total", channel="sms", outcome="unknown") == 1
    )
    assert (
        value(
            registry,
            "missing_alerts_http_requests_total",
            route="/v1/deliveries/{notification_id}",
            method="GET",
            status="404",
        )
        == 1
    )
    assert value(registry, "missing_alerts_twilio_callbacks_total", outcome="bad_signature") == 1


def test_disabled_metrics_record_nothing_and_expose_nothing() -> None:
    m = Metrics(enabled=False)
    m.notification("sms", "sent")
    m.http_request("/x", "GET", 200, 0.1)
    m.timer_tick("escalation", 5, 1)
    m.set_consumer_lag({("t", 0): 1})
    tracker = m.open_episode_tracker(decode_open)
    tracker.reset()
    tracker.add(b"k", b"{}\n{}")
    assert generate_latest(m.registry) == b""


def test_several_apps_in_one_process_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()
    a.notification("email", "sent")
    assert (
        value(a.registry, "missing_alerts_notifications_total", channel="email", outcome="sent")
        == 1
    )
    assert (
        value(b.registry, "missing_alerts_notifications_total", channel="email", outcome="sent")
        == 0
    )


def test_exported_names_cover_every_family_and_the_faust_names_exist() -> None:
    names = exported_names(Metrics().registry)
    assert {
        "missing_alerts_events_ingested_total",
        "missing_alerts_open_episodes",
        "missing_alerts_alert_latency_seconds_bucket",
        "missing_alerts_consumer_lag",  # labelled, no series yet: still listed
        "process_start_time_seconds",
    } <= names
    faust_registry = CollectorRegistry()
    FaustMetrics.create(faust_registry, FAUST_PREFIX)
    assert exported_names(faust_registry) >= FAUST_METRIC_NAMES


async def test_a_scrape_does_not_hold_the_event_loop() -> None:
    """Finding 6 of issue #10: /metrics scrapes slowed /healthz. Rendering runs off the loop:
    while a collector is stuck, another coroutine (any other request) still runs."""
    import asyncio
    import threading

    from prometheus_client.exposition import choose_encoder

    from streams.web.metrics import metrics_body

    release, collecting = threading.Event(), threading.Event()

    class Stuck:
        def collect(self) -> list[Any]:
            collecting.set()
            release.wait(timeout=10)
            return []

    registry = CollectorRegistry()
    registry.register(Stuck())  # type: ignore[arg-type]
    encode, _ = choose_encoder("")
    scrape = asyncio.create_task(metrics_body(encode, registry, ""))
    await asyncio.to_thread(collecting.wait, 10)
    other = await asyncio.wait_for(asyncio.sleep(0, result="healthz answered"), timeout=1)
    assert other == "healthz answered" and not scrape.done()
    release.set()
    assert isinstance(await scrape, bytes)
