from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts.retry import RetryPolicy, backoff, next_attempt_at

T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(jitter=0.0, initial=timedelta(seconds=1), cap=timedelta(seconds=10))
    rng = random.Random(1)
    assert [backoff(policy, n, rng).total_seconds() for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@given(st.integers(1, 50), st.integers(0, 2**32))
def test_jitter_stays_within_bounds(attempt: int, seed: int) -> None:
    policy = RetryPolicy()
    delay = backoff(policy, attempt, random.Random(seed)).total_seconds()
    base = min(policy.initial.total_seconds() * 2 ** (attempt - 1), policy.cap.total_seconds())
    assert base * 0.8 - 1e-9 <= delay <= base * 1.2 + 1e-9


def test_gives_up_after_deadline() -> None:
    policy = RetryPolicy(jitter=0.0, deadline=timedelta(seconds=30))
    rng = random.Random(0)
    assert next_attempt_at(
        policy, first_attempt_at=T0, attempt=1, now=T0, rng=rng
    ) == T0 + timedelta(seconds=1)
    late = T0 + timedelta(seconds=29)
    assert next_attempt_at(policy, first_attempt_at=T0, attempt=5, now=late, rng=rng) is None
