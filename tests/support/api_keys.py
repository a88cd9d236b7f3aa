"""API keys for integration tests: names, secrets, and the keys file a worker loads."""

from __future__ import annotations

import json
from pathlib import Path

from streams.web.auth import hash_key

KEYS: dict[str, tuple[str, list[str], list[str], str | None]] = {
    "carer": ("carer-la-example", ["LA-EXAMPLE"], ["events:write"], None),
    "carer-other": ("carer-la-other", ["LA-OTHER"], ["events:write"], None),
    "case": ("case-system", ["LA-EXAMPLE", "LA-OTHER"], ["profiles:write"], None),
    "case-other": ("case-system-other", ["LA-OTHER"], ["profiles:write"], None),
    # The day duty social worker's desk: acknowledges in dsw-day's name.
    "duty": (
        "duty-team",
        ["LA-EXAMPLE"],
        ["episodes:read", "acknowledge", "deliveries:read", "episodes:cancel"],
        "dsw-day",
    ),
    # A team lead's key: may see the numbers and addresses of whoever was told.
    "duty-lead": ("duty-lead", ["LA-EXAMPLE"], ["episodes:read", "contacts:read"], None),
    # A team key with no responder: may acknowledge only for someone who was messaged.
    "duty-team": ("duty-shared", ["LA-EXAMPLE"], ["episodes:read", "acknowledge"], None),
    "duty-other": (
        "duty-other",
        ["LA-OTHER"],
        ["episodes:read", "acknowledge", "deliveries:read", "episodes:cancel"],
        None,
    ),
}


def secret(name: str) -> str:
    return f"test-secret-{name}"


def write_keys_file(path: Path) -> Path:
    keys = [
        {
            "id": kid,
            "organisation": kid,
            "sha256": hash_key(secret(name)),
            "local_authorities": las,
            "scopes": scopes,
            **({"responder_id": responder} if responder else {}),
        }
        for name, (kid, las, scopes, responder) in KEYS.items()
    ]
    path.write_text(json.dumps({"keys": keys}))  # JSON is YAML
    return path
