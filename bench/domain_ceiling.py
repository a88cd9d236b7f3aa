"""The engine's pure part alone, in this process: no Kafka, no RocksDB.

``streams.engine.batch.process_batch`` (decode, apply, next_due) plus encoding each written
state, over a dict standing in for the store, in batches like the engine's. It is the
ceiling the engine could reach if everything around the domain were free, measured for
children seen for the first time and for long-known children, whose state carries the full
window of remembered event ids (``SEEN_EVENT_IDS_CAP``): every event decodes and
re-encodes that state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.workload import check_in, encode

BATCH = 1000


@dataclass
class _Event:
    """The attributes of a consumed record the engine's batch reads."""

    key: bytes
    value: bytes
    topic: str = "bench.events"
    partition: int = 0
    offset: int = 0


def _apply_all(events: list[_Event], table: dict[bytes, bytes]) -> tuple[float, list[Any]]:
    """Seconds to apply ``events`` in engine-sized batches (writing states to ``table``), and
    each batch's result."""
    from config.loading import load_policy
    from config.settings import POLICY_DIR
    from streams.engine.batch import process_batch

    policy = load_policy(POLICY_DIR)
    results = []
    t0 = time.perf_counter()
    for i in range(0, len(events), BATCH):
        result = process_batch(
            events[i : i + BATCH],
            read=table.get,
            policy=policy,
            now=lambda: datetime.now(UTC),
            skew_tolerance=timedelta(seconds=300),
        )
        for key, write in result.writes.items():
            table[key] = write.entry()
        results.append(result)
    return time.perf_counter() - t0, results


def _run(events: list[_Event], table: dict[bytes, bytes]) -> float:
    seconds, _ = _apply_all(events, table)
    return len(events) / seconds


def _check_ins(children: int, rounds: int, prefix: str) -> list[_Event]:
    at = datetime.now(UTC) - timedelta(seconds=30)
    return [
        _Event(*encode(check_in(f"{prefix}{c:05d}", at)))
        for _ in range(rounds)
        for c in range(children)
    ]


def measure(fresh: int = 20_000, mature_children: int = 200, rounds: int = 20) -> dict[str, Any]:
    from streams.episodes.state import SEEN_EVENT_IDS_CAP

    fresh_rate = _run(_check_ins(fresh, 1, "F"), {})
    table: dict[bytes, bytes] = {}
    _run(_check_ins(mature_children, SEEN_EVENT_IDS_CAP, "M"), table)  # fill the id window
    size = sum(len(v) for v in table.values()) / max(1, len(table))
    mature_rate = _run(_check_ins(mature_children, rounds, "M"), table)
    return {
        "fresh": fresh_rate,
        "mature": mature_rate,
        "state_bytes": size,
        "cap": SEEN_EVENT_IDS_CAP,
    }


def metrics_share(events: int = 40_000, children: int = 4_000) -> float:
    """What the engine's metrics recording costs next to the domain work it counts, in this
    process: the same mixed backlog through ``process_batch`` (plus state encoding), then every
    batch result through ``Metrics.observe_engine_batch``. A ratio of two timings in one process,
    so it does not move with the machine's load the way whole-engine runs do."""
    from bench.workload import mixed_backlog
    from streams.episodes.codec import decode_open
    from telemetry.metrics import Metrics

    backlog, _ = mixed_backlog(events, children)
    domain_s, results = _apply_all([_Event(*encode(e)) for e in backlog], {})
    metrics = Metrics(enabled=True)
    metrics.open_episode_tracker(decode_open)
    t0 = time.perf_counter()
    for result in results:
        metrics.observe_engine_batch(result)
    return (time.perf_counter() - t0) / domain_s
