"""The engine's batch loop (streams/engine/loop.py) on the in-memory broker
(streams/engine/local_broker.py), with the production sink: a revocation mid-batch, a produce
that fails for one topic, a failed commit, a crash between phases, and the escalation timer.
What reaches the alerts topic is counted the way dispatch would see it."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from config.settings import Settings
from schemas.alerts import Alert
from schemas.common import RiskFlag
from schemas.wire import dumps
from streams.engine.kafka_io import KafkaSink
from streams.engine.local_broker import (
    LocalBroker,
    LocalProducer,
    LocalSource,
    local_restore,
)
from streams.engine.loop import Engine, partition_counts
from streams.engine.output import EngineTopics
from streams.engine.store import MemoryStore, StateStore
from streams.kafka.partitioning import partition_for
from streams.runtime.clock import ManualClock
from telemetry.metrics import Metrics
from tests.unit.episode_helpers import T0, absence, profile, shipped_policy

SETTINGS = Settings(app_id="t", topic_prefix="t", topic_partitions=2, engine_batch_max=100)
TOPICS = EngineTopics.from_settings(SETTINGS)
FLAGS = (RiskFlag.CSE,)  # a high-risk child: T+0 at once, T+30m unacknowledged


class Crash(BaseException):
    """A process dying at this point: nothing after it runs."""


@dataclass
class Rig:
    broker: LocalBroker
    store: StateStore
    clock: ManualClock
    engine: Engine
    source: LocalSource
    producer: LocalProducer


async def rig(
    broker: LocalBroker | None = None,
    store: StateStore | None = None,
    clock: ManualClock | None = None,
    sink_class: type[KafkaSink] = KafkaSink,
) -> Rig:
    broker = broker or LocalBroker(partition_counts(SETTINGS))
    store = store or MemoryStore()
    clock = clock or ManualClock(T0)
    source = LocalSource(broker, TOPICS.inputs, {0, 1})
    producer = LocalProducer(broker)
    sink = sink_class(SETTINGS, source, partition_counts(SETTINGS), producer=producer)
    engine = Engine(
        SETTINGS,
        shipped_policy(),
        clock,
        Metrics(),
        store,
        source=source,
        sink=sink,
        restore=local_restore(broker),
        url="local",
    )
    await engine.join()
    return Rig(broker, store, clock, engine, source, producer)


def child_on(partition: int) -> str:
    return next(
        c for c in (f"C{i}" for i in range(100)) if partition_for(c.encode(), 2) == partition
    )


def report(broker: LocalBroker, child: str, *, minutes_ago: int = 1) -> None:
    seen = T0 - timedelta(minutes=minutes_ago)
    broker.produce(
        TOPICS.profiles, child.encode(), dumps(profile(T0 - timedelta(days=1), child=child))
    )
    broker.produce(
        TOPICS.events, child.encode(), dumps(absence(seen, T0, flags=FLAGS, child=child))
    )


def alerts(broker: LocalBroker) -> Counter[str]:
    return Counter(
        Alert.model_validate_json(r.value or b"").alert_id for r in broker.read(TOPICS.alerts)
    )


async def test_a_batch_is_delivered_committed_then_stored() -> None:
    r = await rig()
    report(r.broker, "C1")
    assert await r.engine.step() == 2
    (alert_id,) = alerts(r.broker)
    assert alert_id.endswith(":high-t0")
    p = partition_for(b"C1", 2)
    assert r.broker.committed[(TOPICS.events, p)] == 1
    assert r.broker.committed[(TOPICS.profiles, p)] == 1
    changelog = r.broker.logs[(TOPICS.state_changelog, p)]
    assert r.store.get(p, b"C1") == changelog[-1].value
    assert r.store.changelog_offset(p) == changelog[-1].offset


async def test_a_produce_failing_for_one_topic_is_retried_and_nothing_is_stored_first() -> None:
    r = await rig()
    report(r.broker, "C1")
    r.broker.fail_produce[TOPICS.alerts] = 2
    stored_after: list[int] = []
    write = r.store.write

    def watched(partition: int, entries: Any, offset: int) -> None:
        stored_after.append(len(r.broker.read(TOPICS.alerts)))
        write(partition, entries, offset)

    r.store.write = watched  # type: ignore[method-assign]
    await r.engine.step()
    assert sum(1 for t, _ in r.producer.attempts if t == TOPICS.alerts) == 3
    assert len(alerts(r.broker)) == 1 and stored_after == [1]  # the alert before the state


async def test_a_failed_commit_replays_without_a_second_alert() -> None:
    r = await rig()
    report(r.broker, "C1")
    r.broker.fail_commits = 1
    await r.engine.step()
    assert r.broker.committed == {}
    # A restart on the same disk reads from the last commit: the batch again.
    again = await rig(r.broker, r.store, r.clock)
    assert await again.engine.step() == 2
    assert list(alerts(r.broker).values()) == [1]


async def test_a_crash_after_the_produce_before_the_commit_loses_and_doubles_nothing() -> None:
    broker = LocalBroker(partition_counts(SETTINGS))
    r = await rig(broker)
    report(broker, "C1")

    async def die(_offsets: Any) -> None:
        raise Crash

    r.source.commit = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await r.engine.step()
    assert r.store.get(partition_for(b"C1", 2), b"C1") is None  # never stored
    # The restart restores the state from the changelog and replays the uncommitted batch.
    again = await rig(broker, r.store, r.clock)
    await again.engine.step()
    assert list(alerts(broker).values()) == [1]
    assert again.store.get(partition_for(b"C1", 2), b"C1") is not None


async def test_a_crash_after_the_commit_before_the_store_write_is_caught_up() -> None:
    broker = LocalBroker(partition_counts(SETTINGS))
    r = await rig(broker)
    report(broker, "C1")

    def die(*_args: Any) -> None:
        raise Crash

    r.store.write = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await r.engine.step()
    store = MemoryStore()  # the disk is gone too: everything from the changelog
    again = await rig(broker, store, r.clock)
    assert await again.engine.step() == 0  # committed: nothing to replay
    assert store.get(partition_for(b"C1", 2), b"C1") is not None
    assert list(alerts(broker).values()) == [1]


async def test_a_revocation_waits_for_the_batch_in_progress() -> None:
    r = await rig()
    report(r.broker, "C1")
    gate = asyncio.Event()
    send = r.producer.send_batch

    async def held(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await send(*args, **kwargs)

    r.producer.send_batch = held  # type: ignore[method-assign]
    batch = asyncio.create_task(r.engine.step())
    await asyncio.sleep(0.01)
    revoking = asyncio.create_task(r.source.revoke())
    await asyncio.sleep(0.01)
    assert not revoking.done()  # the partitions may not move while the batch is half done
    gate.set()
    await asyncio.gather(batch, revoking)
    assert r.engine.owned == set() and len(alerts(r.broker)) == 1
    assert r.broker.committed[(TOPICS.events, partition_for(b"C1", 2))] == 1


async def test_records_of_a_partition_that_just_moved_are_left_to_its_new_owner() -> None:
    r = await rig()
    mine, theirs = child_on(0), child_on(1)
    report(r.broker, mine)
    report(r.broker, theirs)
    r.engine.owned = {0}  # partition 1 was revoked between the fetch and the batch
    assert await r.engine.step() == 2
    assert {a.split(":")[0] for a in alerts(r.broker)} and len(alerts(r.broker)) == 1
    assert (TOPICS.events, 1) not in r.broker.committed


async def test_the_timer_fires_the_next_step_when_the_clock_reaches_it() -> None:
    r = await rig()
    report(r.broker, "C1")
    await r.engine.step()
    assert await r.engine.tick() == 0
    r.clock.advance(timedelta(minutes=29))  # last seen a minute before the report
    assert await r.engine.tick() == 1
    assert await r.engine.step() == 1  # the due event
    assert sorted(a.split(":")[1] for a in alerts(r.broker)) == ["high-t0", "high-t30m"]
