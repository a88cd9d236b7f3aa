"""API keys, scopes and rate limits. Pure: the key file is parsed once, checks are functions.

Keys are stored only as SHA-256 hashes. Rotation is two entries with the same ``id`` and two
hashes, both valid until the old one is removed. Each key is limited to the local authorities it
serves and to the scopes it needs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.errors import ConfigError, describe_validation_error
from config.policy import Rota
from config.settings import Settings


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"  # check-ins, absences, returns, updates, RHI records
    PROFILES_WRITE = "profiles:write"
    EPISODES_READ = "episodes:read"
    ACKNOWLEDGE = "acknowledge"
    DELIVERIES_READ = "deliveries:read"  # where a message stands (GET /v1/deliveries/...)
    EPISODES_CANCEL = "episodes:cancel"  # withdraw a false report (duty teams)
    CONTACTS_READ = "contacts:read"  # phone numbers and emails of who was told (episode view)


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    organisation: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    local_authorities: frozenset[str] = Field(min_length=1)
    scopes: frozenset[Scope] = Field(min_length=1)
    rate_limit_per_minute: int = Field(default=1200, ge=1)
    responder_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Rota person this key acts for (a duty desk signed in as one responder): it may "
            "acknowledge in that person's name, whether or not they were messaged."
        ),
    )


class ApiKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[ApiKey, ...]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._by_hash = {k.sha256: k for k in keys}

    def all_keys(self) -> list[ApiKey]:
        return list(self._by_hash.values())

    def hashes(self) -> frozenset[str]:
        return frozenset(self._by_hash)

    def authenticate(self, presented: str | None) -> ApiKey | None:
        # Keys are printable ASCII; anything else (a header that was not UTF-8 reaches us as
        # surrogate escapes) is simply not a key, never an encoding error.
        if not presented or not _TOKEN.match(presented):
            return None
        digest = hash_key(presented)
        # Constant-time comparison against every stored hash: no timing oracle on prefixes.
        found = None
        for stored, key in self._by_hash.items():
            if hmac.compare_digest(stored, digest):
                found = key
        return found


_TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")


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


def load_checked_keys(settings: Settings, rota: Rota) -> KeyRing:
    """The keys file, with every start-up check: responders exist, and in production none of
    the published development keys."""
    path = settings.resolved_api_keys_file
    ring = load_keys(path)
    check_responders(ring, rota, path)
    if settings.environment == "production":
        refuse_development_keys(ring, path, settings.development_api_keys_file)
    return ring


def refuse_development_keys(ring: KeyRing, path: Path, development_file: Path) -> None:
    """Production must not accept the keys published in config/api_keys.dev.yaml."""
    published = load_keys(development_file).hashes()
    found = sorted(k.id for k in ring.all_keys() if k.sha256 in published)
    if found:
        raise ConfigError(
            f"{path}: holds development keys ({', '.join(found)}), whose secrets are "
            "published in the repository; issue new keys for production"
        )


def check_responders(ring: KeyRing, rota: Rota, path: Path) -> None:
    """A key's responder must be someone the rota knows, or acknowledgements in their name
    would record a person nobody can find."""
    for key in ring.all_keys():
        if key.responder_id is not None and key.responder_id not in rota.people:
            raise ConfigError(
                f"{path}: keys.{key.id}.responder_id: {key.responder_id!r} is not a person in "
                "rota.yaml"
            )


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class AddressLimiter:
    """Failed authentications per client address per minute (a fixed window): past the budget
    the address gets 429 without its key being looked at. Bounded memory: the table is
    cleared when it holds too many addresses (a flood from many addresses then costs at most
    one window of budget each)."""

    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, capacity: int = 50_000
    ) -> None:
        self.per_minute, self._clock, self.capacity = per_minute, clock, capacity
        self._window = -1
        self._spent: dict[str, int] = {}

    def _roll(self) -> None:
        window = int(self._clock() // 60)
        if window != self._window or len(self._spent) > self.capacity:
            self._window, self._spent = window, {}

    def has_budget(self, address: str) -> bool:
        self._roll()
        return self._spent.get(address, 0) < self.per_minute

    def spend(self, address: str) -> None:
        self._roll()
        self._spent[address] = self._spent.get(address, 0) + 1


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
