"""The duty desk list's query string (``GET /v1/episodes``), parsed on its own: pure, so the
OpenAPI document states the same limits the view enforces, and hostile values are tested
without a server. A bad value is a 400 naming the parameter; another authority's is a 403."""

from __future__ import annotations

from typing import Any, Final

from streams.web.access import ApiError
from streams.web.auth import ApiKey

MAX_LIMIT: Final = 200
STATUSES: Final = ("open", "closed", "cancelled", "all")
MAX_CLOSED_DAYS: Final = 90


def query(key: ApiKey, params: Any) -> tuple[list[str], str, int, int, int]:
    """(authorities, status, offset, limit, closed days) from the query string; a bad one is a
    400 naming the parameter."""
    status = params.get("status", "open")
    if status not in STATUSES:
        raise ApiError(400, "invalid_query", {"field": "status", "allowed": list(STATUSES)})
    authority = params.get("local_authority")
    if authority is not None and not (
        authority.isascii() and authority.isprintable() and 0 < len(authority) <= 64
    ):
        raise ApiError(400, "invalid_query", {"field": "local_authority", "max_length": 64})
    if authority is not None and authority not in key.local_authorities:
        raise ApiError(403, "forbidden", "this key does not serve that local authority")
    numbers = {}
    for name, default, low, high in (
        ("limit", 50, 1, MAX_LIMIT),
        ("cursor", 0, 0, 10**9),
        ("closed_days", 7, 0, MAX_CLOSED_DAYS),
    ):
        raw = params.get(name, str(default))
        digits = raw.isascii() and raw.isdigit() and len(raw) <= 10  # int() of 5,000 digits raises
        if not digits or not low <= int(raw) <= high:
            raise ApiError(400, "invalid_query", {"field": name, "range": [low, high]})
        numbers[name] = int(raw)
    authorities = [authority] if authority else sorted(key.local_authorities)
    return authorities, status, numbers["cursor"], numbers["limit"], numbers["closed_days"]
