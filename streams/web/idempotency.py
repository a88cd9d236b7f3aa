"""Idempotency-Key replay cache for the write API. Pure (the clock is injected).

The cache answers a retried request with its first response. It is per worker and bounded; what
makes a retry safe across workers and restarts is that the event id is derived from the key, so
the engine drops a second copy of the same event even when this cache never saw the first.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5


@dataclass(frozen=True)
class Stored:
    body_hash: str
    status: int
    response: dict[str, Any]
    at: float


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def event_id_for(api_key_id: str, idempotency_key: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"missing-alerts:api:{api_key_id}:{idempotency_key}")


class IdempotencyCache:
    def __init__(
        self,
        capacity: int = 50_000,
        ttl_s: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._items: OrderedDict[tuple[str, str], Stored] = OrderedDict()
        self.capacity, self.ttl_s, self._clock = capacity, ttl_s, clock

    def get(self, api_key_id: str, key: str) -> Stored | None:
        item = self._items.get((api_key_id, key))
        if item is None:
            return None
        if self._clock() - item.at > self.ttl_s:
            del self._items[(api_key_id, key)]
            return None
        return item

    def put(
        self, api_key_id: str, key: str, hashed: str, status: int, response: dict[str, Any]
    ) -> None:
        self._items[(api_key_id, key)] = Stored(hashed, status, response, self._clock())
        self._items.move_to_end((api_key_id, key))
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
