"""streams/runtime/gc.py: survivors are frozen each round, and a full round reclaims cycles
among frozen objects (the leak a freeze-only policy would have)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.runtime.gc import GcPolicy


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_round_freezes_survivors() -> None:
    gc.unfreeze()
    policy = GcPolicy(freeze_every=10, full_every=3600)
    policy.round()
    assert gc.get_freeze_count() > 0


def test_cycle_frozen_while_alive_is_reclaimed_only_by_a_full_round() -> None:
    gc.unfreeze()
    policy = GcPolicy(freeze_every=10, full_every=3600)
    holder = [_cycle()]
    alive = holder[0]()
    assert alive is not None
    policy.round()  # the cycle is alive: frozen
    del alive
    policy.round()  # now garbage, but frozen: an ordinary round cannot see it
    assert holder[0]() is not None
    policy.full_every = 0  # next round is a full one
    policy.round()
    assert holder[0]() is None
