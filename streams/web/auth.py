"""API keys, scopes and rate limits. Pure: the key file is parsed once, checks are functions.

Keys are stored only as SHA-256 hashes. Rotation is two entries with the same ``id`` and two
hashes, both valid until the old one is removed. Each key is limited to the local authorities it
serves and to the scopes it needs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.errors import ConfigError, describe_validation_error


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"  # check-ins, absences, returns, updates, RHI records
    PROFILES_WRITE = "profiles:write"
    EPISODES_READ = "episodes:read"
    ACKNOWLEDGE = "acknowledge"


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    organisation: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    local_authorities: frozenset[str] = Field(min_length=1)
    scopes: frozenset[Scope] = Field(min_length=1)
    rate_limit_per_minute: int = Field(default=1200, ge=1)


class ApiKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[ApiKey, ...]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._by_hash = {k.sha256: k for k in keys}

    def authenticate(self, presented: str | None) -> ApiKey | None:
        if not presented:
            return None
        digest = hash_key(presented)
        # Constant-time comparison against every stored hash: no timing oracle on prefixes.
        found = None
        for stored, key in self._by_hash.items():
            if hmac.compare_digest(stored, digest):
                found = key
        return found


def load_keys(path: Path) -> KeyRing:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: invalid YAML") from None
    try:
        return KeyRing(ApiKeyFile.model_validate(data).keys)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class RateLimiter:
    """Token bucket per key: a burst up to the per-minute limit, refilled continuously."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: ApiKey) -> tuple[bool, float]:
        """(allowed, seconds until a token is available)."""
        now = self._clock()
        capacity = float(key.rate_limit_per_minute)
        rate = capacity / 60.0
        tokens, last = self._buckets.get(key.id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key.id] = (tokens - 1.0, now)
            return True, 0.0
        self._buckets[key.id] = (tokens, now)
        return False, (1.0 - tokens) / rate
