"""API keys for integration tests: names, secrets, and the keys file a worker loads."""

from __future__ import annotations

import json
from pathlib import Path

from streams.web.auth import hash_key

KEYS = {
    "carer": ("carer-la-example", ["LA-EXAMPLE"], ["events:write"]),
    "carer-other": ("carer-la-other", ["LA-OTHER"], ["events:write"]),
    "case": ("case-system", ["LA-EXAMPLE", "LA-OTHER"], ["profiles:write"]),
    "duty": ("duty-team", ["LA-EXAMPLE"], ["episodes:read", "acknowledge"]),
    "duty-other": ("duty-other", ["LA-OTHER"], ["episodes:read", "acknowledge"]),
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
        }
        for name, (kid, las, scopes) in KEYS.items()
    ]
    path.write_text(json.dumps({"keys": keys}))  # JSON is YAML
    return path
