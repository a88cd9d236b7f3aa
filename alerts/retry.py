"""Retry timing for retryable delivery failures: exponential backoff with jitter, up to a deadline.

Pure (the random source and the clock are arguments), after Alertmanager's retry stage: jitter
spreads the retries of many notifications hitting the same outage, and the deadline turns an
outage that outlasts usefulness into the fallback path instead of retrying forever.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    initial: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    cap: timedelta = timedelta(seconds=60)
    jitter: float = 0.2  # +/- fraction of the delay
    deadline: timedelta = timedelta(minutes=10)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> timedelta:
    """Delay before retry number ``attempt`` (1-based)."""
    base = min(
        policy.initial.total_seconds() * policy.factor ** max(0, attempt - 1),
        policy.cap.total_seconds(),
    )
    spread = base * policy.jitter
    return timedelta(seconds=max(0.0, base + rng.uniform(-spread, spread)))


def next_attempt_at(
    policy: RetryPolicy,
    *,
    first_attempt_at: datetime,
    attempt: int,
    now: datetime,
    rng: random.Random,
) -> datetime | None:
    """When to try again, or None when the deadline has passed (give up, use the fallback)."""
    at = now + backoff(policy, attempt, rng)
    if at > first_attempt_at + policy.deadline:
        return None
    return at
