"""Scenario 6: POST /v1/absences from 50 concurrent clients; every 202 means Kafka acked it.

The clients run in this process (aiohttp, one connection pool), each posting absences for new
children back to back for a fixed time after a warm-up. The worker does everything it does in
production for each request: authenticate, validate, produce with acks=all and wait, then the
engine opens an episode and dispatch writes its messages to the outbox. Throughput counts 202s
per second over the measured window; latency is per request, client side. By default the
clients are paced to the target rate (500/s): the target is latency *at* that load; with
``--api-rate 0`` they go back to back and measure the ceiling instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.harness import (
    CpuWatch,
    Window,
    Worker,
    create_topics,
    log,
    paced_client,
    percentile,
)
from bench.report import env_summary
from bench.results import Figure, Result, at_least, at_most
from streams.web.auth import hash_key

NAME = "api_throughput"
TARGET_RPS = 500.0
TARGET_P99_MS = 100.0
KEY = "bench-api-key"


def _absence_poster(
    session: aiohttp.ClientSession, url: str, prefix: str
) -> Callable[[int], Awaitable[int]]:
    """Request ``n`` of one client: an absence for a child never seen before."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def post(n: int) -> int:
        body = json.dumps(
            {
                "child_ref": f"{prefix}{n:06d}",
                "last_seen_at": "2026-11-28T20:00:00Z",
                "reporter": {"role": "carer"},
            }
        )
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    return post


async def run(bench: Any, opts: Any) -> Result:
    res = Result(NAME, "API throughput: POST /v1/absences, 202 only after Kafka acks")
    home = bench.root / "api"
    home.mkdir(parents=True, exist_ok=True)
    keys = home / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "id": "bench",
                        "organisation": "bench",
                        "sha256": hash_key(KEY),
                        "local_authorities": ["LA-EXAMPLE"],
                        "scopes": ["events:write"],
                        "rate_limit_per_minute": 10_000_000,
                    }
                ]
            }
        )
    )
    env = bench.env("api", MISSING_ALERTS_API_KEYS_FILE=str(keys))
    await create_topics(env)
    worker = Worker(env, home / "worker.log")
    worker.start()
    try:
        await worker.wait_ready()
        url = env["MISSING_ALERTS_PUBLIC_BASE_URL"] + "/v1/absences"
        clients, warmup, duration = opts.api_clients, opts.api_warmup, opts.api_seconds
        log(f"api_throughput: {clients} clients, {warmup:g} s warm-up, {duration:g} s measured")
        watch = CpuWatch([worker.pid, *bench.our_pids()])
        start = time.monotonic()
        window = Window(measure_from=start + warmup, stop_at=start + warmup + duration)
        interval = clients / opts.api_rate if opts.api_rate else 0.0
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(
                *(
                    paced_client(
                        _absence_poster(session, url, f"API{bench.run_id}{i:03d}x"),
                        window,
                        interval,
                    )
                    for i in range(clients)
                )
            )
        cpu = watch.result()
    finally:
        worker.stop()
    latencies, statuses = window.latencies, window.statuses
    accepted = statuses.get(202, 0)
    rps = accepted / opts.api_seconds
    p50 = percentile(latencies, 50) if latencies else None
    p99 = percentile(latencies, 99) if latencies else None
    res.add(
        Figure(
            "202 responses per second",
            rps,
            "req/s",
            f">= {TARGET_RPS:,.0f} req/s",
            at_least(rps, TARGET_RPS),
        )
    )
    res.add(Figure("latency p50", p50, "ms", fmt="{:,.1f}"))
    res.add(
        Figure(
            "latency p99",
            p99,
            "ms",
            f"<= {TARGET_P99_MS:.0f} ms",
            at_most(p99, TARGET_P99_MS),
            fmt="{:,.1f}",
        )
    )
    res.notes.append(
        f"statuses in the measured window: {dict(sorted(statuses.items()))}; "
        f"this run's processes used {cpu['ours_cores']:.2f} cores (the load generator shares "
        "the machine's two cores with the worker and the broker)."
    )
    res.settings = {
        "clients": f"{opts.api_clients} concurrent, keep-alive, one new child per request, "
        + (f"paced to {opts.api_rate:g} requests/s in total" if opts.api_rate else "back to back"),
        "window": f"{opts.api_warmup:g} s warm-up, then {opts.api_seconds:g} s measured",
        "worker env": env_summary(env),
    }
    return res
