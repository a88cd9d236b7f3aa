"""Who may act on which child, and in whose name (streams/web/access.py, streams/web/auth.py):
the fixes for findings 3, 5 and 6 of issue #10, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import load_policy
from config.errors import ConfigError
from config.settings import POLICY_DIR
from streams.web.access import (
    ApiError,
    acknowledger,
    check_child,
    child_in_scope,
    idempotency_key,
)
from streams.web.auth import (
    AddressLimiter,
    ApiKey,
    KeyRing,
    Scope,
    check_responders,
    hash_key,
    load_keys,
    refuse_development_keys,
)

DEFAULT = "LA-EXAMPLE"


def key(*las: str, responder: str | None = None) -> ApiKey:
    return ApiKey(
        id="k",
        organisation="o",
        sha256=hash_key("s"),
        local_authorities=frozenset(las),
        scopes=frozenset({Scope.EVENTS_WRITE}),
        responder_id=responder,
    )


def status(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    detail = exc.value.detail
    field = detail[0]["field"] if isinstance(detail, list) else ""
    return exc.value.status, field


def test_a_bare_reference_belongs_to_the_keys_authority() -> None:
    assert child_in_scope(key(DEFAULT), "C1", authority=None, default_authority=DEFAULT) == "C1"
    other = key("LA-OTHER")
    assert child_in_scope(other, "C1", authority=None, default_authority=DEFAULT) == "C1@LA-OTHER"
    # Spelled out for the default authority, it is the bare reference: one child, one key.
    assert (
        child_in_scope(key(DEFAULT), "C1@LA-EXAMPLE", authority=None, default_authority=DEFAULT)
        == "C1"
    )


def test_another_authority_can_neither_claim_nor_block_a_child() -> None:
    """Finding 5: LA-OTHER profiled an unprofiled reference first and LA-EXAMPLE then got 403
    reporting its own child missing. Now LA-OTHER's 'U1' is 'U1@LA-OTHER', a different child."""
    case_other = key("LA-OTHER")
    claimed = child_in_scope(case_other, "U1", authority="LA-OTHER", default_authority=DEFAULT)
    assert claimed == "U1@LA-OTHER"
    ours = child_in_scope(key(DEFAULT), "U1", authority=None, default_authority=DEFAULT)
    assert ours == "U1" and ours != claimed
    with pytest.raises(ApiError) as exc:  # and LA-OTHER cannot reach LA-EXAMPLE's U1
        child_in_scope(case_other, "U1@LA-EXAMPLE", authority=None, default_authority=DEFAULT)
    assert status(exc) == (403, "")
    with pytest.raises(ApiError) as exc:
        check_child(case_other, "U1", DEFAULT)
    assert exc.value.status == 403


def test_ambiguous_or_contradictory_authorities_are_422_naming_the_field() -> None:
    both = key(DEFAULT, "LA-OTHER")
    with pytest.raises(ApiError) as exc:
        child_in_scope(both, "C1", authority=None, default_authority=DEFAULT)
    assert status(exc) == (422, "child_ref")
    assert child_in_scope(both, "C1@LA-OTHER", authority=None, default_authority=DEFAULT)
    with pytest.raises(ApiError) as exc:
        child_in_scope(both, "C1@LA-OTHER", authority=DEFAULT, default_authority=DEFAULT)
    assert status(exc) == (422, "local_authority")


def test_acknowledgement_only_for_the_notified_or_the_keys_responder() -> None:
    """Finding 3: 'nobody-at-all' got 202 and silenced the until-ack steps."""
    team = key(DEFAULT)
    assert acknowledger(team, "pl-1", ["dsw-day", "pl-1"])["basis"] == "notified"
    for who in ("nobody-at-all", None):
        with pytest.raises(ApiError) as exc:
            acknowledger(team, who, ["dsw-day", "pl-1"])
        assert status(exc) == (422, "recipient_id")
    desk = key(DEFAULT, responder="tm-1")
    assert acknowledger(desk, None, []) == {
        "recipient_id": "tm-1",
        "basis": "named_responder",
        "api_key_id": "k",
    }


def test_idempotency_keys_are_printable_ascii() -> None:
    assert idempotency_key("k-1") == "k-1" and idempotency_key(None) is None
    for bad in ("caf\udcc3\udca9", "", "x" * 201, "two words"):
        with pytest.raises(ApiError) as exc:
            idempotency_key(bad)
        assert status(exc) == (422, "Idempotency-Key")


def test_a_token_that_is_not_ascii_is_no_key_rather_than_an_error() -> None:
    """Finding 2: a non-UTF-8 bearer token (surrogate escapes in aiohttp) answered 500."""
    ring = KeyRing((key(DEFAULT),))
    assert ring.authenticate("s") is not None
    assert ring.authenticate("\udcff\udcfe") is None and ring.authenticate("s\u00e9") is None


def test_failed_authentications_are_limited_per_address() -> None:
    now = [0.0]
    limiter = AddressLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.has_budget("10.0.0.1")
        limiter.spend("10.0.0.1")
    assert not limiter.has_budget("10.0.0.1") and limiter.has_budget("10.0.0.2")
    now[0] += 61
    assert limiter.has_budget("10.0.0.1")


def test_production_refuses_published_development_keys(tmp_path: Path) -> None:
    dev = POLICY_DIR / "api_keys.dev.yaml"
    with pytest.raises(ConfigError, match="development keys"):
        refuse_development_keys(load_keys(dev), dev, dev)
    own = tmp_path / "keys.json"
    record = {
        "id": "prod",
        "organisation": "o",
        "sha256": hash_key("new"),
        "local_authorities": ["LA-EXAMPLE"],
        "scopes": ["events:write"],
    }
    own.write_text(json.dumps({"keys": [record]}))
    refuse_development_keys(load_keys(own), own, dev)


def test_a_responder_must_be_on_the_rota(tmp_path: Path) -> None:
    rota = load_policy(POLICY_DIR).rota
    check_responders(KeyRing((key(DEFAULT, responder="tm-1"),)), rota, tmp_path)
    with pytest.raises(ConfigError, match="responder_id"):
        check_responders(KeyRing((key(DEFAULT, responder="ghost"),)), rota, tmp_path)
