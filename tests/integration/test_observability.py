"""Observability on a real worker and broker: one scripted episode moves the counters by exactly
what it did, /metrics names no child, and the JSON logs tag episode lines and leak nothing."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from schemas.common import RiskFlag
from schemas.events import ChildProfile
from tests.integration.test_dispatch import DEV_DUTY_KEY, expected
from tests.integration.test_escalation import produce, steps_for, wait_alerts
from tests.support import events as ev
from tests.support.kafka import produce_raw
from tests.support.scrape import Samples, get, scrape, scrape_until, total
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

CHILD = "OBSCHILD7"
NAME = "Jane Example-Private"
ADDRESS = "1 Hidden Lane, Somewhere"
MEDICAL = "insulin dependent diabetic"
PLACES = "Riverside arcade"
CIRCUMSTANCES = "left with an older man in a silver car"
PERSONAL = (NAME, ADDRESS, MEDICAL, PLACES, CIRCUMSTANCES)


def profile() -> ChildProfile:
    return ChildProfile(
        occurred_at=datetime.now(UTC),
        child_ref=CHILD,
        initials="JE",
        date_of_birth=date(2010, 6, 1),
        local_authority="LA-EXAMPLE",
        police_force="FORCE-EXAMPLE",
        full_name=NAME,
        address=ADDRESS,
        medical_notes=MEDICAL,
        places_frequented=(PLACES,),
    )


async def test_scripted_episode_moves_metrics_and_logs_leak_nothing(
    worker: WorkerProcess, short_policy_env: dict[str, str]
) -> None:
    env = short_policy_env
    env["MISSING_ALERTS_METRICS_LAG_INTERVAL_S"] = "1"
    worker.start()
    worker.wait_ready()
    events_topic = f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.events"
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]

    absence = ev.absence(CHILD, flags=frozenset({RiskFlag.TRAFFICKING_SUSPECTED}))
    await produce(env, profile(), absence)
    first = await wait_alerts(env, lambda a: "high-t0" in steps_for(a, CHILD))
    code = next(a["episode_code"] for a in first if a["child_ref"] == CHILD)
    opened = await scrape_until(
        env, lambda s: get(s, "missing_alerts_open_episodes", tier="high", category="missing") == 1
    )
    assert get(opened, "missing_alerts_open_episodes", tier="high", category="missing") == 1

    # One invalid record (no last_seen_at, no reporter), carrying personal text as well.
    invalid = json.dumps(
        {
            "type": "absence",
            "child_ref": CHILD,
            "occurred_at": datetime.now(UTC).isoformat(),
            "circumstances": CIRCUMSTANCES,
        }
    ).encode()
    await produce_raw(bootstrap, events_topic, [(CHILD.encode(), invalid)])

    # The whole high ladder (T+0, 4 s, 8 s), then an acknowledgement and the return.
    alerts = await wait_alerts(env, lambda a: "high-t2h" in steps_for(a, CHILD))
    await produce(env, ev.ack(CHILD, code))
    await produce_raw(bootstrap, events_topic, [ev.record(ev.returned(CHILD, code))])
    alerts = await wait_alerts(env, lambda a: "returned" in steps_for(a, CHILD))
    mine = [a for a in alerts if a["child_ref"] == CHILD]
    assert [a["step_id"] for a in mine] == ["high-t0", "high-t30m", "high-t2h", "returned"]
    want = Counter(n.channel.value for a in mine for n in expected(a, env))
    first_step = Counter(n.channel.value for n in expected(mine[0], env))

    # Ask the delivery endpoint about one notification: counted by route template, not path.
    nid = expected(mine[0], env)[0].notification_id
    with pytest.raises(urllib.error.HTTPError):  # 404 or found: either way a counted request
        await asyncio.to_thread(
            urllib.request.urlopen,
            urllib.request.Request(
                f"{env['MISSING_ALERTS_PUBLIC_BASE_URL']}/v1/deliveries/{nid}x",
                headers={"Authorization": f"Bearer {DEV_DUTY_KEY}"},
            ),
            timeout=10,
        )

    def settled(s: Samples) -> bool:
        sent = total(s, "missing_alerts_notifications_total", outcome="sent")
        closed = get(s, "missing_alerts_episode_records_total", action="closed")
        lag = total(s, "missing_alerts_consumer_lag")
        return sent >= sum(want.values()) and closed >= 1 and lag == 0

    samples = await scrape_until(env, settled)
    text, _ = await asyncio.to_thread(scrape, env)

    # Events in: exactly what was produced (TimerDue events come from the engine's own timer).
    ingested = "missing_alerts_events_ingested_total"
    for event_type in ("profile", "absence", "acknowledgement", "return"):
        assert get(samples, ingested, type=event_type, outcome="accepted") == 1, event_type
    assert get(samples, ingested, type="absence", outcome="invalid") == 1
    assert total(samples, ingested, outcome="invalid") == 1
    assert total(samples, ingested, outcome="dead_lettered") == 0
    assert get(samples, ingested, type="timer_due", outcome="accepted") >= 2
    dead = "missing_alerts_dead_letters_total"
    assert get(samples, dead, stage="engine", reason="invalid_event") == 1

    # Episode and escalations.
    records = "missing_alerts_episode_records_total"
    assert get(samples, records, action="opened") == 1
    assert get(samples, records, action="acknowledged") == 1
    assert get(samples, records, action="closed") == 1
    esc = "missing_alerts_escalations_total"
    assert get(samples, esc, tier="high", kind="absence_reported", step="high-t0") == 1
    assert get(samples, esc, tier="high", kind="escalation", step="high-t30m") == 1
    assert get(samples, esc, tier="high", kind="still_missing", step="high-t2h") == 1
    assert get(samples, esc, tier="high", kind="returned", step="returned") == 1
    assert total(samples, esc) == 4
    late = "missing_alerts_escalation_lateness_seconds"
    for kind in ("absence_reported", "escalation", "still_missing"):
        assert get(samples, f"{late}_count", kind=kind) == 1, kind
        # Fired by the timer a few hundred milliseconds after due at most, never minutes.
        assert get(samples, f"{late}_sum", kind=kind) < 10, kind
    assert total(samples, "missing_alerts_open_episodes") == 0  # returned: none open

    # Notifications: every one the fan-out implies was handed to the outbox notifier once.
    notes = "missing_alerts_notifications_total"
    for channel, count in want.items():
        assert get(samples, notes, channel=channel, outcome="sent") == count, channel
    assert total(samples, notes, outcome="failed") == 0
    latency = "missing_alerts_alert_latency_seconds_count"
    for channel, count in first_step.items():
        assert get(samples, latency, channel=channel, kind="absence_reported") == count
    assert total(samples, "missing_alerts_dispatch_latency_seconds_count") == sum(want.values())

    # Kafka, timers, web, Faust's own sensor, the process.
    assert get(samples, "missing_alerts_consumer_lag", topic=events_topic, partition="0") == 0
    assert (
        get(samples, "missing_alerts_timer_rebuilds_total", timer="escalation") >= 1
        and ("missing_alerts_timer_index_entries", frozenset({("timer", "escalation")})) in samples
    )
    http = "missing_alerts_http_requests_total"
    assert get(samples, http, route="/metrics", method="GET", status="200") >= 1
    assert get(samples, http, route="/v1/deliveries/{notification_id}", method="GET", status="404")
    assert total(samples, "missing_alerts_faust_messages_received_total") > 0
    assert total(samples, "process_resident_memory_bytes") > 0

    # No label value (nor anything else on the page) names the child or the episode.
    for (_name, labels), _value in samples.items():
        for label_value in dict(labels).values():
            assert CHILD not in label_value and code not in label_value and nid not in label_value
    for secret in (*PERSONAL, CHILD, code):
        assert secret not in text

    # Logs: JSON only (Faust's and aiokafka's lines included), nothing personal anywhere, and
    # every line about this child names the episode.
    worker.stop()
    raw = worker.logs()
    for secret in PERSONAL:
        assert secret not in raw, secret
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    loggers = {str(line.get("logger")) for line in lines}
    assert any(name.startswith("faust.") for name in loggers)
    assert any(name.startswith("aiokafka") or name.startswith("mode") for name in loggers)
    about_child = [line for line in lines if line.get("child_ref") == CHILD]
    assert about_child
    assert all(line.get("episode_code") == code for line in about_child), [
        line for line in about_child if line.get("episode_code") != code
    ]
    events_logged = Counter(str(line["event"]) for line in about_child)
    assert events_logged["episode opened"] == 1 and events_logged["episode closed"] == 1
    assert events_logged["alert decided"] == 4
    assert events_logged["notification attempted"] == sum(want.values())
    # The invalid record was logged without its content.
    assert any(line.get("event") == "input dead-lettered" for line in lines)
