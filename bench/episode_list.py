"""Scenario 7: GET /v1/episodes?status=open with 10,000 open episodes (issue 14's target:
p99 <= 50 ms, answered from memory of the read model).

The episode-views changelog is filled with 10,000 open summaries as the engine writes them
(streams/episodes/views.py, one record per episode code), across tiers and last-seen times, all
in one authority: the worst case for one key, every request sorts through all of them. A worker
then starts, loads the table and its in-memory index, and clients poll the list, paced as a room
of duty desks would (the default 50 requests/s is 100 desks polling every 2 s). In the same run
and the same window, ``GET /healthz`` on the same worker is the baseline: what the web server,
the event loop and the client cost without the list. A deep page (the last 50) is timed too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from bench.harness import (
    CpuWatch,
    Window,
    Worker,
    create_topics,
    log,
    paced_client,
    percentile,
    settings_for,
)
from bench.report import env_summary
from bench.results import Figure, Result, at_most
from schemas.common import Category, Tier
from streams.episodes.views import EpisodeSummary
from streams.kafka.topics import TABLES
from streams.web.auth import hash_key

NAME = "episode_list"
TARGET_P99_MS = 50.0
KEY = "bench-desk-key"
TIERS = (Tier.HIGH, Tier.MEDIUM, Tier.STANDARD)


def summaries(count: int, now: datetime) -> list[EpisodeSummary]:
    """``count`` open episodes of LA-EXAMPLE, tiers mixed, missing for minutes to two days."""
    return [
        EpisodeSummary(
            episode_code=f"B{i:07d}",
            child_ref=f"BENCH{i:06d}",
            local_authority="LA-EXAMPLE",
            initials="AB",
            status="open",
            tier=TIERS[i % 3],
            category=Category.MISSING if i % 4 else Category.AWAY,
            last_seen_at=now - timedelta(minutes=(i * 7919) % 2880),
            reported_at=now - timedelta(minutes=(i * 7919) % 2880) + timedelta(minutes=5),
            returned_at=None,
            acknowledged_by={"dsw-day": now} if i % 5 == 0 else {},
            next_step="high-t30m",
            next_due_at=now + timedelta(minutes=i % 30),
            late=False,
            updated_at=now,
        )
        for i in range(count)
    ]


async def fill_views(env: dict[str, str], views: list[EpisodeSummary]) -> None:
    settings = settings_for(env)
    topic = TABLES["episode_views"].changelog(settings.app_id)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers(), linger_ms=20)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, v.model_dump_json().encode(), key=v.episode_code.encode())
            for v in views
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def _getter(session: aiohttp.ClientSession, url: str) -> Callable[[int], Awaitable[int]]:
    headers = {"Authorization": f"Bearer {KEY}"}

    async def get(_n: int) -> int:
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            return resp.status

    return get


async def _loaded(session: aiohttp.ClientSession, base: str, want: int, within: float) -> float:
    """Seconds until the worker's list counts ``want`` open episodes."""
    began = time.monotonic()
    headers = {"Authorization": f"Bearer {KEY}"}
    while time.monotonic() - began < within:
        async with session.get(f"{base}/v1/episodes?limit=1", headers=headers) as resp:
            if resp.status == 200 and (await resp.json())["total"] >= want:
                return time.monotonic() - began
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the worker's list did not reach {want} episodes in {within:g} s")


def _keys_file(path: Any) -> None:
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {
                        "id": "bench-desk",
                        "organisation": "bench",
                        "sha256": hash_key(KEY),
                        "local_authorities": ["LA-EXAMPLE"],
                        "scopes": ["episodes:read"],
                        "rate_limit_per_minute": 10_000_000,
                    }
                ]
            }
        )
    )


async def run(bench: Any, opts: Any) -> Result:
    res = Result(NAME, "Duty desk list: GET /v1/episodes?status=open, from memory")
    home = bench.root / "desk"
    home.mkdir(parents=True, exist_ok=True)
    _keys_file(home / "keys.json")
    env = bench.env("desk", MISSING_ALERTS_API_KEYS_FILE=str(home / "keys.json"))
    await create_topics(env)
    count = opts.list_episodes
    await fill_views(env, summaries(count, datetime.now(UTC)))
    worker = Worker(env, home / "worker.log")
    worker.start()
    base = env["MISSING_ALERTS_PUBLIC_BASE_URL"]
    try:
        await worker.wait_ready()
        async with aiohttp.ClientSession() as session:
            loaded_s = await _loaded(session, base, count, within=120)
            log(f"episode_list: {count:,} episodes listed {loaded_s:.1f} s after ready")
            watch = CpuWatch([worker.pid, *bench.our_pids()])
            start = time.monotonic()
            measure = start + opts.list_warmup
            runs = {
                name: Window(measure_from=measure, stop_at=measure + opts.list_seconds)
                for name in ("list", "deep", "healthz")
            }
            urls = {
                "list": f"{base}/v1/episodes?status=open",
                "deep": f"{base}/v1/episodes?status=open&cursor={count - 50}",
                "healthz": f"{base}/healthz",
            }
            per_client = opts.list_clients / opts.list_rate
            await asyncio.gather(
                *(
                    paced_client(_getter(session, url), runs[name], per_client)
                    for name, url in urls.items()
                    for _ in range(opts.list_clients)
                )
            )
            cpu = watch.result()
    finally:
        worker.stop()
    _figures(res, {name: window.latencies for name, window in runs.items()})
    statuses = {
        status: sum(w.statuses.get(status, 0) for w in runs.values())
        for status in sorted({s for w in runs.values() for s in w.statuses})
    }
    res.notes.append(
        f"{count:,} open episodes in one authority, loaded from the changelog "
        f"{loaded_s:.1f} s after the worker was ready; statuses {statuses}; "
        f"this run's processes used {cpu['ours_cores']:.2f} cores. The baseline, GET /healthz, "
        "ran in the same window at the same rate on the same worker."
    )
    res.settings = {
        "clients": f"{opts.list_clients} per URL (list, last page, healthz), each paced to "
        f"{opts.list_rate:g} requests/s per URL in total",
        "window": f"{opts.list_warmup:g} s warm-up, then {opts.list_seconds:g} s measured",
        "worker env": env_summary(env),
    }
    return res


def _figures(res: Result, runs: dict[str, list[float]]) -> None:
    for name, label in (
        ("list", "list (first page of 50)"),
        ("deep", "list, last page"),
        ("healthz", "baseline GET /healthz"),
    ):
        values = runs[name]
        p50 = percentile(values, 50) if values else None
        p99 = percentile(values, 99) if values else None
        res.add(Figure(f"{label} p50", p50, "ms", fmt="{:,.1f}"))
        target = f"<= {TARGET_P99_MS:.0f} ms" if name != "healthz" else ""
        verdict = at_most(p99, TARGET_P99_MS) if name != "healthz" else None
        res.add(Figure(f"{label} p99", p99, "ms", target, verdict, fmt="{:,.1f}"))
