"""Read a worker's /metrics page the way Prometheus does, and wait on what it says."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(env: dict[str, str]) -> tuple[str, Samples]:
    url = f"{env['MISSING_ALERTS_PUBLIC_BASE_URL']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        content_type = resp.headers["Content-Type"]
        text = resp.read().decode()
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def scrape_until(env: dict[str, str], predicate: Any, within: float = 30.0) -> Samples:
    deadline = time.monotonic() + within
    samples: Samples = {}
    while time.monotonic() < deadline:
        _, samples = await asyncio.to_thread(scrape, env)
        if predicate(samples):
            return samples
        await asyncio.sleep(0.5)
    return samples


def retried(samples: Samples, channel: str) -> float:
    return get(samples, "missing_alerts_notifications_total", channel=channel, outcome="retried")
