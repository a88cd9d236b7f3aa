"""The engine <-> worker contract, in one place: how the worker starts its engine process, and
how any worker reads a child's state from the engine that holds it.

- The worker runs ``python -m streams.engine.process`` with its own environment plus
  ``PORT_ENV`` (the engine's internal HTTP port) and ``PARENT_ENV`` (the worker's pid, which the
  engine polls so it never outlives a SIGKILLed worker).
- ``GET STATE_PATH``: a child's stored state bytes (streams/episodes/codec.py), answered by the
  engine holding the child's partition or forwarded once to it (``ROUTED_HEADER`` marks the
  forward); 404 none, 503 while partitions move. Every request carries ``TOKEN_HEADER``, an HMAC
  of the path with the link secret.
- ``GET METRICS_PATH``: the engine's metrics, merged into the worker's /metrics.
- The tables both sides read are declared once with their changelog names in
  streams/kafka/topics.py.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from aiohttp import ClientSession

PORT_ENV: Final = "MISSING_ALERTS_ENGINE_PORT"
PARENT_ENV: Final = "MISSING_ALERTS_ENGINE_PARENT"
METRICS_PATH: Final = "/metrics"
STATE_PATH: Final = "/internal/state/{child}"
TOKEN_HEADER: Final = "X-Missing-Alerts-Internal"
ROUTED_HEADER: Final = "X-Missing-Alerts-Routed"


def internal_token(key: bytes, path: str) -> str:
    return hmac.new(key, f"internal:{path}".encode(), hashlib.sha256).hexdigest()


async def fetch_state(
    session: ClientSession, base_url: str, child: str, key: bytes, *, routed: bool = False
) -> tuple[int, bytes]:
    """(status, body) of ``GET {base_url}/internal/state/{child}``."""
    path = STATE_PATH.format(child=child)
    headers = {TOKEN_HEADER: internal_token(key, path)}
    if routed:
        headers[ROUTED_HEADER] = "1"
    async with session.get(base_url + path, headers=headers) as response:
        return response.status, await response.read()
