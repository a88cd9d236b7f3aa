"""The engine's batch loop (streams/engine/loop.py) on the in-memory broker
(streams/engine/local_broker.py), with the production sinks of both guarantees: a revocation
mid-batch, a produce that fails for one topic, a failed commit, a crash at each named failpoint,
a fenced zombie, and the escalation timer. What reaches the alerts topic is counted the way
dispatch sees it (read_committed)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from config.settings import Settings
from schemas.alerts import Alert
from schemas.common import RiskFlag
from schemas.wire import dumps
from streams.engine.kafka_io import Fenced, KafkaSink, TransactionalSink
from streams.engine.local_broker import (
    LocalBroker,
    LocalProducer,
    LocalSource,
    LocalTxnProducer,
    local_restore,
)
from streams.engine.loop import Engine, partition_counts
from streams.engine.output import EngineTopics
from streams.engine.ports import Sink
from streams.engine.store import MemoryStore, StateStore
from streams.kafka.partitioning import partition_for
from streams.runtime import failpoints
from streams.runtime.clock import ManualClock
from telemetry.metrics import Metrics
from tests.unit.episode_helpers import T0, absence, profile, shipped_policy

SETTINGS = Settings(app_id="t", topic_prefix="t", topic_partitions=2, engine_batch_max=100)
TOPICS = EngineTopics.from_settings(SETTINGS)
COUNTS = partition_counts(SETTINGS)
FLAGS = (RiskFlag.CSE,)  # a high-risk child: T+0 at once, T+30m unacknowledged


class Crash(BaseException):
    """A process dying at this point: nothing after it runs."""


def crash(_name: str) -> None:
    raise Crash


@pytest.fixture(params=["at_least_once", "exactly_once"])
def guarantee(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Rig:
    broker: LocalBroker
    store: StateStore
    clock: ManualClock
    engine: Engine
    source: LocalSource
    sink: Sink
    producers: list[LocalProducer] = field(default_factory=list)

    def attempts(self, topic: str) -> int:
        return sum(1 for p in self.producers for t, _ in p.attempts if t == topic)


async def rig(
    guarantee: str,
    broker: LocalBroker | None = None,
    store: StateStore | None = None,
    clock: ManualClock | None = None,
    settings: Settings = SETTINGS,
) -> Rig:
    broker = broker or LocalBroker(COUNTS)
    store = store or MemoryStore()
    clock = clock or ManualClock(T0)
    source = LocalSource(broker, TOPICS.inputs, {0, 1})
    producers: list[LocalProducer] = []

    def producer(transactional: str | None) -> LocalProducer:
        made = LocalTxnProducer(broker, transactional)
        producers.append(made)
        return made

    sink: Sink
    if guarantee == "exactly_once":
        outside = frozenset({TOPICS.codes_changelog})
        sink = TransactionalSink(SETTINGS, COUNTS, outside=outside, producer_factory=producer)
    else:
        sink = KafkaSink(SETTINGS, source, COUNTS, producer=producer(None))
    engine = Engine(
        settings,
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
    return Rig(broker, store, clock, engine, source, sink, producers)


def child_on(partition: int) -> str:
    return next(
        c for c in (f"C{i}" for i in range(100)) if partition_for(c.encode(), 2) == partition
    )


def report(broker: LocalBroker, child: str) -> None:
    seen = T0 - timedelta(minutes=1)
    broker.produce(
        TOPICS.profiles, child.encode(), dumps(profile(T0 - timedelta(days=1), child=child))
    )
    broker.produce(
        TOPICS.events, child.encode(), dumps(absence(seen, T0, flags=FLAGS, child=child))
    )


def alerts(broker: LocalBroker, *, committed: bool = True) -> Counter[str]:
    return Counter(
        Alert.model_validate_json(r.value or b"").alert_id
        for r in broker.read(TOPICS.alerts, committed=committed)
    )


async def test_a_batch_is_delivered_committed_then_stored(guarantee: str) -> None:
    r = await rig(guarantee)
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


async def test_a_produce_failing_for_one_topic_is_retried_and_nothing_is_stored_first(
    guarantee: str,
) -> None:
    r = await rig(guarantee)
    report(r.broker, "C1")
    r.broker.fail_produce[TOPICS.alerts] = 2
    stored_after: list[int] = []
    write = r.store.write

    def watched(partition: int, entries: Any, offset: int) -> None:
        stored_after.append(len(r.broker.read(TOPICS.alerts)))
        write(partition, entries, offset)

    r.store.write = watched  # type: ignore[method-assign]
    await r.engine.step()
    assert r.attempts(TOPICS.alerts) == 3
    assert list(alerts(r.broker).values()) == [1] and stored_after == [1]  # alert, then state
    if guarantee == "exactly_once":  # the failed attempts were aborted, never seen
        assert len(r.broker.read(TOPICS.alerts, committed=False)) == 1


async def test_a_failed_commit_replays_or_retries_without_a_second_alert(guarantee: str) -> None:
    r = await rig(guarantee)
    report(r.broker, "C1")
    r.broker.fail_commits = 1
    await r.engine.step()
    if guarantee == "at_least_once":
        assert r.broker.committed == {}  # the commit failed; the offsets stay behind
    else:
        assert r.broker.committed  # the transaction was aborted and tried again whole
    # A restart on the same disk reads from the last commit.
    again = await rig(guarantee, r.broker, r.store, r.clock)
    await again.engine.step()
    assert list(alerts(r.broker).values()) == [1]


@pytest.mark.parametrize(
    "point",
    [
        "engine.after_produce_before_commit",
        "engine.after_commit_before_store",
        "engine.after_store_before_poll",
    ],
)
@pytest.mark.parametrize("lose_disk", [False, True], ids=["same-disk", "new-disk"])
async def test_a_crash_at_each_failpoint_loses_and_doubles_nothing(
    guarantee: str, point: str, lose_disk: bool
) -> None:
    broker = LocalBroker(COUNTS)
    r = await rig(guarantee, broker)
    children = [child_on(0), child_on(1), "X1", "X2"]
    for child in children:
        report(broker, child)
    with failpoints.armed(point, crash), pytest.raises(Crash):
        await r.engine.step()
    store = MemoryStore() if lose_disk else r.store
    again = await rig(guarantee, broker, store, r.clock)
    while await again.engine.step():
        pass
    counts = alerts(broker)
    assert sorted(a.split(":")[1] for a in counts) == ["high-t0"] * len(children)
    assert set(counts.values()) == {1}  # read_committed: every alert exactly once
    if guarantee == "exactly_once":  # nothing of the crashed attempt is visible at all
        assert len(broker.read(TOPICS.alerts)) == len(children)
    for child in children:
        assert store.get(partition_for(child.encode(), 2), child.encode()) is not None


async def test_a_zombie_is_fenced_and_writes_nothing_a_reader_sees() -> None:
    """An engine that stalls past its session loses its partitions; when it resumes it must
    not land what it was doing. The new owner's producer fences it."""
    broker = LocalBroker(COUNTS)
    zombie = await rig("exactly_once", broker)
    report(broker, "C1")
    # It stops between sending and committing: the transaction stays open.
    with failpoints.armed("engine.after_produce_before_commit", crash), pytest.raises(Crash):
        await zombie.engine.step()
    assert alerts(broker) == Counter() and len(broker.read(TOPICS.alerts, committed=False)) == 1
    heir = await rig("exactly_once", broker, MemoryStore(), zombie.clock)  # fences the zombie
    await heir.engine.step()
    assert list(alerts(broker).values()) == [1]
    # The zombie wakes up and tries to finish its transaction: refused.
    producer = zombie.sink.producers[partition_for(b"C1", 2)]  # type: ignore[attr-defined]
    with pytest.raises(Exception) as refused:
        await producer.commit_transaction()
    assert "fenced" in str(refused.value)
    assert list(alerts(broker).values()) == [1]
    assert [r.state for r in broker.read(TOPICS.alerts, committed=False)] == [
        "aborted",
        "committed",
    ]


async def test_a_fenced_delivery_stops_the_engine() -> None:
    broker = LocalBroker(COUNTS)
    old = await rig("exactly_once", broker)
    await rig("exactly_once", broker)  # a newer engine took the same partitions' ids
    report(broker, "C1")
    with pytest.raises(Fenced):
        await old.engine.step()
    assert alerts(broker) == Counter()


async def test_a_revocation_waits_for_the_batch_in_progress(guarantee: str) -> None:
    r = await rig(guarantee)
    report(r.broker, "C1")
    gate = asyncio.Event()
    held_producers = []
    for producer in r.producers:
        send = producer.send_batch

        async def held(*args: Any, _send: Any = send, **kwargs: Any) -> Any:
            await gate.wait()
            return await _send(*args, **kwargs)

        producer.send_batch = held  # type: ignore[method-assign]
        held_producers.append(producer)
    batch = asyncio.create_task(r.engine.step())
    await asyncio.sleep(0.01)
    revoking = asyncio.create_task(r.source.revoke())
    await asyncio.sleep(0.01)
    assert not revoking.done()  # the partitions may not move while the batch is half done
    gate.set()
    await asyncio.gather(batch, revoking)
    assert r.engine.owned == set() and len(alerts(r.broker)) == 1
    assert r.broker.committed[(TOPICS.events, partition_for(b"C1", 2))] == 1


async def test_records_of_a_partition_that_just_moved_are_left_to_its_new_owner(
    guarantee: str,
) -> None:
    r = await rig(guarantee)
    mine, theirs = child_on(0), child_on(1)
    report(r.broker, mine)
    report(r.broker, theirs)
    r.engine.owned = {0}  # partition 1 was revoked between the fetch and the batch
    assert await r.engine.step() == 2
    assert [a.split(":")[0] for a in alerts(r.broker)] and len(alerts(r.broker)) == 1
    assert (TOPICS.events, 1) not in r.broker.committed


async def test_the_timer_fires_the_next_step_when_the_clock_reaches_it(guarantee: str) -> None:
    r = await rig(guarantee)
    report(r.broker, "C1")
    await r.engine.step()
    assert await r.engine.tick() == 0
    r.clock.advance(timedelta(minutes=29))  # last seen a minute before the report
    assert await r.engine.tick() == 1
    assert await r.engine.step() == 1  # the due event
    assert sorted(a.split(":")[1] for a in alerts(r.broker)) == ["high-t0", "high-t30m"]


async def test_a_commit_interval_holds_batches_and_commits_them_together(guarantee: str) -> None:
    settings = SETTINGS.model_copy(update={"engine_commit_interval_s": 5.0})
    r = await rig(guarantee, settings=settings)
    report(r.broker, child_on(0))
    await r.engine.step()
    report(r.broker, "X7")
    await r.engine.step()  # a second batch sees the first one's states, though not stored
    assert r.broker.committed == {}
    # At least once the outputs are durable as sent; exactly once they wait for the commit.
    assert len(alerts(r.broker)) == (2 if guarantee == "at_least_once" else 0)
    assert r.store.get(partition_for(child_on(0).encode(), 2), child_on(0).encode()) is None
    r.clock.advance(timedelta(seconds=5))
    await r.engine.step()
    assert sorted(alerts(r.broker).values()) == [1, 1] and r.broker.committed
    report(r.broker, "X8")
    await r.engine.step()
    await r.source.revoke()  # what is held goes out before the partitions move
    assert len(alerts(r.broker)) == 3


async def test_a_failed_transaction_of_several_batches_is_sent_again_whole() -> None:
    settings = SETTINGS.model_copy(update={"engine_commit_interval_s": 5.0})
    r = await rig("exactly_once", settings=settings)
    report(r.broker, "X7")
    await r.engine.step()
    r.broker.fail_produce[TOPICS.alerts] = 1  # the second batch's alert fails in the open txn
    report(r.broker, "X8")
    await r.engine.step()
    r.clock.advance(timedelta(seconds=5))
    await r.engine.step()
    assert sorted(alerts(r.broker).values()) == [1, 1]  # both, once, after one retry
    states = [rec.state for rec in r.broker.read(TOPICS.alerts, committed=False)]
    assert states.count("committed") == 2 and "open" not in states
