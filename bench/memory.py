"""Scenario 3: worker resident memory (VmRSS) with 10k and 100k open episodes.

Read from /proc/<pid>/status after all episodes are applied (committed offsets at the end of the
input) and 5 s of settling. Uses the shared population worker: when escalation_lateness ran first,
its measurements at each size are reused (taken before its measurement window); otherwise the
worker is grown to each size here.
"""

from __future__ import annotations

from typing import Any

from bench.population import population
from bench.results import Figure, Result, at_most

NAME = "memory"
TARGET_MB = 300.0


async def run(bench: Any, opts: Any) -> Result:
    res = Result(NAME, "Worker memory per open episode")
    pop = await population(bench, opts)
    for total in sorted(opts.episodes):
        if total not in pop.stages:
            if total < pop.open:
                res.notes.append(f"{total:,}: not measured (the worker already holds {pop.open:,})")
                continue
            await pop.grow_to(total)
    sizes = sorted(t for t in opts.episodes if t in pop.stages)
    res.add(Figure("idle worker (0 open episodes)", pop.idle_rss_mb, "MB"))
    largest = max(opts.episodes)
    for total in sizes:
        rss = pop.stages[total].rss_mb
        is_target = total == largest
        res.add(
            Figure(
                f"{total:,} open episodes",
                rss,
                "MB",
                f"<= {TARGET_MB:.0f} MB at {largest:,}" if is_target else "",
                at_most(rss, TARGET_MB) if is_target else None,
            )
        )
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        a, b = pop.stages[lo].rss_mb, pop.stages[hi].rss_mb
        if a is not None and b is not None:
            per = (b - a) / ((hi - lo) / 10_000)
            res.add(
                Figure(
                    "per 10,000 open episodes",
                    per,
                    "MB",
                    note=f"(RSS at {hi:,} - RSS at {lo:,}) / {(hi - lo) / 10_000:g}",
                    fmt="{:,.1f}",
                )
            )
    res.settings = {
        **pop.settings(),
        "measured": "VmRSS of the worker process, 5 s after the group committed the last input",
        "MB": "10^6 bytes",
    }
    res.notes.append(
        "The open episodes are mostly silent standard-tier episodes plus the high-risk ones of "
        "the lateness waves (bench/population.py); with escalation_lateness in the run, each "
        "size was measured just before its lateness window."
    )
    return res
