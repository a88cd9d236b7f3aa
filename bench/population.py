"""One worker holding a growing number of open episodes, shared by the lateness, memory and
recovery scenarios (building 100,000 open episodes is the expensive part of all three).

Policy (a copy of config/ in the run's scratch dir):

- ``escalation.yaml``: the high ladder's second step (``high-t30m``) falls due ``step_after``
  seconds after last seen (lead + window + 10 s), high re-notify every 24 h (never, here);
  the standard ladder's first step moves to 4 h, so a standard episode opens silently;
- ``risk.yaml``: ``high_when_profile_missing: false``, so an absence with no flags and no profile
  is standard.

Two kinds of children:

- background: a standard-tier absence (no profile, no flags). The episode opens, nothing is
  sent and nothing falls due before 4 h. This is the bulk of the open episodes: each sits in the
  table and in the timer's index like any open episode. (With the shipped ladder every opening
  fires a first step; dispatching 100,000 of those through the outbox takes ~7 minutes on this
  machine, ~230 alerts/s measured, which is setup cost, not what is being measured);
- measured: a high-risk absence (flag ``child_sexual_exploitation``). ``high-t0`` fires on open
  (as it would) and ``high-t30m`` falls due at ``last_seen_at + step_after``; last_seen_at is
  chosen so that these due times are spread evenly over the measurement window.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness import (
    Bench,
    TopicTail,
    Worker,
    create_topics,
    log,
    policy_copy,
    produce_fast,
    topic,
    wait_caught_up,
)
from bench.report import env_summary
from bench.workload import CSE, absence, code_of, encode

MEASURED_STEP = "high-t30m"
SETTLE_S = 5.0


@dataclass
class Due:
    child: str
    code: str
    last_seen: datetime
    due_at: datetime


@dataclass
class Stage:
    open_episodes: int
    rss_mb: float | None
    background_s: float  # produce -> applied, for the background added at this stage


@dataclass
class Population:
    bench: Bench
    lead_s: float
    window_s: float
    env: dict[str, str] = field(default_factory=dict)
    worker: Worker | None = None
    open: int = 0
    next_child: int = 0
    stages: dict[int, Stage] = field(default_factory=dict)
    idle_rss_mb: float | None = None
    step_after_s: float = 0.0

    @classmethod
    async def create(cls, bench: Bench, *, lead_s: float, window_s: float) -> Population:
        pop = cls(bench, lead_s, window_s)
        pop.step_after_s = round(lead_s + window_s + 10)
        policy = policy_copy(
            bench.root / "episodes-policy",
            {
                "escalation.yaml": [
                    ("renotify_every: 15m", "renotify_every: 24h"),
                    (
                        "id: high-t30m\n        after: 30m",
                        f"id: high-t30m\n        after: {pop.step_after_s:.0f}s",
                    ),
                    ("id: standard-t0\n        after: 0m", "id: standard-t0\n        after: 4h"),
                ],
                "risk.yaml": [
                    ("high_when_profile_missing: true", "high_when_profile_missing: false")
                ],
            },
        )
        pop.env = bench.env("episodes", MISSING_ALERTS_POLICY_DIR=str(policy))
        await create_topics(pop.env)
        pop.worker = Worker(pop.env, bench.root / "episodes" / "worker.log")
        pop.worker.start()
        await pop.worker.wait_ready()
        await asyncio.sleep(2)
        pop.idle_rss_mb = pop.worker.rss_mb()
        bench.shared["population"] = pop
        return pop

    @property
    def bootstrap(self) -> str:
        return self.env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]

    def settings(self) -> dict[str, Any]:
        return {
            "policy": f"copy of config/: high-t30m after {self.step_after_s:.0f}s, high "
            "renotify 24h, standard-t0 after 4h, high_when_profile_missing false",
            "store": "rocksdb:// (default)",
            "partitions": self.env["MISSING_ALERTS_TOPIC_PARTITIONS"],
            "worker env": env_summary(self.env, str(self.bench.root)),
        }

    async def wait_applied(self, within: float, *, alerts: bool = False) -> float:
        """Until the worker's group has committed every input (and, optionally, every alert:
        dispatch done). Returns seconds waited."""
        t0 = time.monotonic()
        app_id = self.env["MISSING_ALERTS_APP_ID"]
        # The engine commits as group "<app id>-engine"; dispatch (Faust) as "<app id>".
        waits = [(f"{app_id}-engine", [topic(self.env, "events"), topic(self.env, "due")])]
        if alerts:
            waits.append((app_id, [topic(self.env, "alerts")]))
        for group, topics in waits:
            await wait_caught_up(
                self.bootstrap,
                group,
                topics,
                within=max(1.0, within - (time.monotonic() - t0)),
                worker=self.worker,
            )
        return time.monotonic() - t0

    def _child(self) -> str:
        self.next_child += 1
        return f"E{self.next_child:07d}"

    async def add_background(self, count: int) -> float:
        """``count`` silent standard episodes; returns seconds from produce to applied."""
        if count <= 0:
            return 0.0
        now = datetime.now(UTC)
        events = [absence(self._child(), now, now) for _ in range(count)]
        t0 = time.monotonic()
        await produce_fast(self.bootstrap, topic(self.env, "events"), (encode(e) for e in events))
        await self.wait_applied(within=max(120.0, count / 200))
        self.open += count
        return time.monotonic() - t0

    def measured_tail(self) -> tuple[TopicTail, set[bytes]]:
        """A tail of the alerts topic keeping only the measured step for the children the
        caller adds to the returned key set (its due wave), from now on."""
        keys: set[bytes] = set()
        marker = f'"step_id":"{MEASURED_STEP}"'.encode()
        tail = TopicTail(
            self.bootstrap,
            [topic(self.env, "alerts")],
            lambda k, v: k in keys and v is not None and marker in v,
            from_beginning=False,
        )
        return tail, keys

    async def add_due(self, count: int, first_due: datetime, spread_s: float) -> list[Due]:
        """``count`` high-risk episodes whose measured step falls due evenly over
        [first_due, first_due + spread_s]. Produced now; returns their due times."""
        now = datetime.now(UTC)
        after = timedelta(seconds=self.step_after_s)
        dues: list[Due] = []
        events = []
        for i in range(count):
            due_at = first_due + timedelta(seconds=spread_s * (i + 0.5) / count)
            last_seen = due_at - after
            if last_seen > now:
                raise ValueError("a measured step would be due before its absence is reported")
            child = self._child()
            event = absence(child, now, last_seen, [CSE])
            events.append(event)
            dues.append(Due(child, code_of(event), last_seen, due_at))
        await produce_fast(self.bootstrap, topic(self.env, "events"), (encode(e) for e in events))
        self.open += count
        return dues

    async def record_stage(self, background_s: float) -> Stage:
        await asyncio.sleep(SETTLE_S)
        assert self.worker is not None
        stage = Stage(self.open, self.worker.rss_mb(), background_s)
        self.stages[self.open] = stage
        log(f"population: {self.open:,} open episodes, RSS {stage.rss_mb or 0:.0f} MB")
        return stage

    async def grow_to(self, total: int) -> Stage:
        """Background episodes up to ``total`` open (no measured wave), then RSS."""
        seconds = await self.add_background(total - self.open)
        return await self.record_stage(seconds)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()


async def population(bench: Bench, opts: Any) -> Population:
    pop = bench.shared.get("population")
    if isinstance(pop, Population):
        return pop
    return await Population.create(bench, lead_s=opts.lateness_lead, window_s=opts.lateness_window)
