"""Scenario 2: how late the timer fires escalation steps with many open episodes on one worker.

For each size N (default 10,000 then 100,000, on the same worker: see bench/population.py), the
worker holds N open episodes, of which ``rate x window`` are high-risk episodes whose second step
(``high-t30m``) falls due at a steady rate over the window. Lateness of one step = the alert's
``occurred_at`` (when the engine fired it) minus its due time (``last_seen_at + step delay``,
both read back from the alert; they match what was produced). Steps that never fire within the
grace period count as late by the whole wait.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import CpuWatch, log, percentile
from bench.population import MEASURED_STEP, Due, Population, population
from bench.results import Figure, Result, at_most

NAME = "escalation_lateness"
TARGET_P99_S = 1.0
GRACE_S = 30.0


async def measure_stage(pop: Population, total: int, opts: Any, res: Result) -> dict[str, Any]:
    window = opts.lateness_window
    measured = max(1, min(int(opts.lateness_rate * window), total - pop.open))
    background = max(0, total - pop.open - measured)
    log(f"escalation_lateness: {total:,} open: {background:,} background + {measured:,} due")
    bg_s = await pop.add_background(background)

    tail, keys = pop.measured_tail()
    await tail.start()
    try:
        first_due = datetime.now(UTC) + timedelta(seconds=opts.lateness_lead)
        dues = await pop.add_due(measured, first_due, window)
        keys.update(d.child.encode() for d in dues)
        setup_note = ""
        try:
            # The wave's first steps (high-t0) are dispatched before the window starts.
            await pop.wait_applied(within=max(1.0, opts.lateness_lead - 10), alerts=True)
        except TimeoutError:
            setup_note = "the wave's high-t0 dispatch was still running when the window began"
        stage = await pop.record_stage(bg_s)
        wait = (first_due - datetime.now(UTC)).total_seconds()
        if wait < 0:
            setup_note = setup_note or "setup ran into the window"
        await asyncio.sleep(max(0.0, wait))
        watch = CpuWatch([pop.worker.pid, *pop.bench.our_pids()] if pop.worker else [])
        end = first_due + timedelta(seconds=window)
        remaining = (end - datetime.now(UTC)).total_seconds() + GRACE_S
        t0 = time.monotonic()
        await tail.wait_for(measured, remaining, pop.worker)
        cpu = watch.result()
        waited = time.monotonic() - t0
    finally:
        await tail.stop()

    by_child = {d.child: d for d in dues}
    late: list[float] = []
    mismatched = 0
    fired: dict[str, int] = {}
    for rec in tail.records:
        alert = rec.json()
        due: Due = by_child[alert["child_ref"]]
        fired[due.child] = fired.get(due.child, 0) + 1
        if fired[due.child] > 1:
            continue  # a replayed duplicate: the first one is the firing
        seen = datetime.fromisoformat(alert["last_seen_at"])
        due_at = seen + timedelta(seconds=pop.step_after_s)
        if abs((due_at - due.due_at).total_seconds()) > 0.001:
            mismatched += 1
        late.append((datetime.fromisoformat(alert["occurred_at"]) - due_at).total_seconds())
    missing = measured - len(late)
    late_all = late + [waited] * missing  # never fired: late by at least the whole wait
    return {
        "total": total,
        "measured": measured,
        "fired": len(late),
        "missing": missing,
        "duplicates": sum(n - 1 for n in fired.values()),
        "early": sum(1 for x in late if x < 0),
        "mismatched": mismatched,
        "p50": percentile(late_all, 50) if late_all else None,
        "p99": percentile(late_all, 99) if late_all else None,
        "max": max(late_all) if late_all else None,
        "min": min(late) if late else None,
        "rss_mb": stage.rss_mb,
        "background_s": bg_s,
        "background": background,
        "cpu": cpu,
        "note": setup_note,
    }


def _timer_interval(env: dict[str, str]) -> float:
    from config.settings import Settings

    given = env.get("MISSING_ALERTS_TIMER_INTERVAL_S")
    return float(given) if given else float(Settings.model_fields["timer_interval_s"].default)


async def run(bench: Any, opts: Any) -> Result:
    res = Result(NAME, "Escalation lateness with many open episodes")
    pop = await population(bench, opts)
    stages = []
    for total in sorted(opts.episodes):
        if total <= pop.open:
            res.notes.append(f"{total:,}: skipped, the worker already holds {pop.open:,}.")
            continue
        stages.append(await measure_stage(pop, total, opts, res))
    largest = max(opts.episodes)
    for st in stages:
        label = f"{st['total']:,} open"
        is_target = st["total"] == largest
        res.add(Figure(f"{label}: p50", st["p50"], "s", fmt="{:.3f}"))
        res.add(
            Figure(
                f"{label}: p99",
                st["p99"],
                "s",
                f"<= {TARGET_P99_S:.0f} s at {largest:,} open" if is_target else "",
                at_most(st["p99"], TARGET_P99_S) if is_target else None,
                "{:.3f}",
            )
        )
        res.add(Figure(f"{label}: max", st["max"], "s", fmt="{:.3f}"))
        res.cpu[f"window at {st['total']:,} open"] = st["cpu"]
        res.notes.append(
            f"{st['total']:,} open: {st['measured']:,} steps due over {opts.lateness_window:.0f} s "
            f"({st['measured'] / opts.lateness_window:.0f}/s); fired {st['fired']:,}, never fired "
            f"{st['missing']}, fired early {st['early']}, duplicate alerts {st['duplicates']}, "
            f"earliest {st['min']:.3f} s; {st['background']:,} background episodes applied in "
            f"{st['background_s']:.0f} s"
            + (f"; note: {st['note']}" if st["note"] else "")
            + (
                f"; {st['mismatched']} due times differed from those produced"
                if st["mismatched"]
                else ""
            )
            + "."
        )
    interval = _timer_interval(pop.env)
    res.notes.append(
        f"The timer looks for due steps every {interval:g} s (MISSING_ALERTS_TIMER_INTERVAL_S), "
        f"so a step waits on average {interval / 2:g} s and at most {interval:g} s for the next "
        "scan, then goes through the due topic and an engine batch."
    )
    res.settings = {
        **pop.settings(),
        "window": f"{opts.lateness_window:.0f} s, starting {opts.lateness_lead:.0f} s after the "
        f"due wave is produced; {opts.lateness_rate:g} steps due per second",
        "measured step": f"{MEASURED_STEP} of high-risk (child_sexual_exploitation) episodes",
    }
    return res
