"""Wait on a condition with a deadline: the one polling loop the integration tests share, so
none of them sleeps on its own (a bare sleep hopes; this fails, saying what it waited for)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    what: str,
    *,
    within: float = 10.0,
    every: float = 0.1,
) -> T:
    """Call ``probe`` until ``done`` holds for its result, and return that result; after
    ``within`` seconds fail with ``what`` and the last result."""
    deadline = time.monotonic() + within
    while True:
        got = await probe()
        if done(got):
            return got
        assert time.monotonic() < deadline, f"{what}: last {got!r}"[:2000]
        await asyncio.sleep(every)


async def until(predicate: Callable[[], bool], what: str, *, within: float = 30.0) -> None:
    """``poll`` for a plain condition on what the test can see (requests at a fake, a log)."""

    async def probe() -> bool:
        return predicate()

    await poll(probe, bool, what, within=within)
