"""Consumer lag of a consumer's assigned partitions, for the lag gauge of either process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from telemetry.metrics import consumer_lag


async def read_lag(
    consumer: Any, topics: Iterable[str], *, wait_s: float = 5.0
) -> dict[tuple[str, int], int]:
    """End offsets (fresh, one ListOffsets request) and positions of the consumer's assigned
    partitions of ``topics`` -> lag per (topic, partition). Changelog partitions are left out:
    active tables write them without reading them back, so their "lag" would only grow."""
    wanted = set(topics)
    tps = [tp for tp in consumer.assignment() if tp.topic in wanted]
    if not tps:
        return {}
    # Faust's consumer wraps the request as highwaters(); a plain aiokafka one has end_offsets().
    fetch_ends = getattr(consumer, "highwaters", None)
    ends_call = fetch_ends(*tps) if fetch_ends is not None else consumer.end_offsets(tps)
    ends_raw = await asyncio.wait_for(ends_call, wait_s)
    ends = {(tp.topic, tp.partition): end for tp, end in ends_raw.items()}
    positions: dict[tuple[str, int], int | None] = {}
    for tp in tps:
        try:
            positions[(tp.topic, tp.partition)] = await asyncio.wait_for(
                consumer.position(tp), wait_s
            )
        except Exception:  # no position yet (being reset), or a timeout: leave it out
            positions[(tp.topic, tp.partition)] = None
    return consumer_lag(ends, positions)
