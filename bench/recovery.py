"""Scenario 4: SIGKILL the worker holding 100k open episodes while steps are about to fall due,
restart it, and time from the new process's spawn to the first due step fired.

A wave of high-risk episodes is produced whose ``high-t30m`` step falls due a few seconds
later; once it is applied (and its first steps dispatched) the worker is SIGKILLed half the
downtime before that due time, and spawned again half the downtime after it, with the same data
dir (RocksDB kept), or with it deleted (the table is rebuilt from its Kafka changelog). "Fired"
is the alert's ``occurred_at`` (the engine's clock), "spawn" the wall clock just before
``Popen``. A downtime shorter than the broker session timeout (as when a supervisor restarts the
process at once) makes the new worker wait for the killed member's session to expire.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.harness import log
from bench.population import Population, population
from bench.results import Figure, Result

NAME = "recovery"


async def one_restart(pop: Population, opts: Any, *, lose_disk: bool) -> dict[str, Any]:
    assert pop.worker is not None
    worker = pop.worker
    tail, keys = pop.measured_tail()
    await tail.start()
    try:
        first_due = datetime.now(UTC) + timedelta(seconds=opts.recovery_due_in)
        dues = await pop.add_due(opts.recovery_children, first_due, 0.5)
        keys.update(d.child.encode() for d in dues)
        half = opts.recovery_downtime / 2
        kill_at = min(d.due_at for d in dues).timestamp() - half
        await pop.wait_applied(within=max(1.0, kill_at - time.time()), alerts=True)
        if tail.records or time.time() > kill_at:
            raise RuntimeError("the wave was not applied before the kill: raise --recovery-due-in")
        await asyncio.sleep(max(0.0, kill_at - time.time()))
        killed_at = time.time()
        worker.kill()
        if lose_disk:
            shutil.rmtree(Path(pop.env["MISSING_ALERTS_DATA_DIR"]), ignore_errors=True)
        last_due = max(d.due_at for d in dues).timestamp()
        await asyncio.sleep(max(0.0, last_due + half - time.time()))
        log(f"recovery: restarting ({'data dir removed' if lose_disk else 'same data dir'})")
        worker.start()
        spawned = worker.spawned_at
        ready_s = await worker.wait_ready(within=300)
        ok = await tail.wait_for(len(dues), 300, worker)
    finally:
        await tail.stop()
    fired = [datetime.fromisoformat(r.json()["occurred_at"]).timestamp() for r in tail.records]
    per_child = Counter(r.key for r in tail.records)
    ready_wall = worker.ready_wall()
    engine_wall = worker.ready_wall("engine partitions assigned")
    return {
        "lose_disk": lose_disk,
        "downtime_s": spawned - killed_at,
        "first_s": min(fired) - spawned if fired else None,
        "all_s": max(fired) - spawned if fired and ok else None,
        "ready_s": (ready_wall - spawned) if ready_wall else ready_s,
        "engine_ready_s": (engine_wall - spawned) if engine_wall else None,
        "fired": len(per_child),
        "expected": len(dues),
        "duplicates": sum(n - 1 for n in per_child.values()),
        "open": pop.open,
    }


async def run(bench: Any, opts: Any) -> Result:
    res = Result(NAME, "Recovery after SIGKILL")
    pop = await population(bench, opts)
    target = max(opts.episodes)
    if pop.open < target:
        await pop.grow_to(target)
    # The population arrives from escalation_lateness with its last waves' alerts possibly
    # still being dispatched: let them finish, or the wave below is not applied before its
    # kill and the measurement would include that backlog.
    waited = await pop.wait_applied(within=600, alerts=True)
    log(f"recovery: population settled (dispatch caught up) after {waited:.1f} s")
    runs = [await one_restart(pop, opts, lose_disk=False)]
    if opts.recovery_rebuild:
        runs.append(await one_restart(pop, opts, lose_disk=True))
    for r in runs:
        label = "data dir removed (rebuild from changelog)" if r["lose_disk"] else "same data dir"
        res.add(Figure(f"{label}: spawn -> first due step fired", r["first_s"], "s", fmt="{:.1f}"))
        res.add(Figure(f"{label}: spawn -> all due steps fired", r["all_s"], "s", fmt="{:.1f}"))
        res.add(
            Figure(
                f"{label}: spawn -> engine partitions restored",
                r["engine_ready_s"],
                "s",
                fmt="{:.1f}",
            )
        )
        res.add(Figure(f"{label}: spawn -> Faust 'Worker ready'", r["ready_s"], "s", fmt="{:.1f}"))
        res.notes.append(
            f"{label}: {r['open']:,} open episodes; down {r['downtime_s']:.1f} s; "
            f"{r['fired']} of {r['expected']} due steps fired after the restart, "
            f"{r['duplicates']} duplicate alerts on the topic."
        )
    session = pop.env.get("MISSING_ALERTS_BROKER_SESSION_TIMEOUT_S", "10 (default)")
    res.settings = {
        **pop.settings(),
        "due wave": f"{opts.recovery_children} high-risk episodes due {opts.recovery_due_in:.0f} s "
        f"after they are produced (within 0.5 s of each other)",
        "downtime": f"{opts.recovery_downtime:.0f} s: SIGKILL {opts.recovery_downtime / 2:.1f} s "
        "before the due time, spawn the same after it",
        "broker session timeout": f"MISSING_ALERTS_BROKER_SESSION_TIMEOUT_S={session}",
    }
    res.notes.append(
        "With a downtime shorter than the session timeout, the restarted worker joins the "
        "consumer group while the killed member is still registered: the coordinator completes "
        "the rebalance only once that member's session has expired, so the rest of the session "
        "timeout is part of the figure. The engine (its own group, <app id>-engine) restores its "
        "partitions from the local store plus the changelog and fires due steps without waiting "
        "for the Faust side ('Worker ready', which serves the API and dispatch)."
    )
    return res
