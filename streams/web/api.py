"""The versioned HTTP API (/v1) on the worker's own web server.

Writes are validated by the schemas, checked against the caller's key (scope and local
authority), and answered 202 only after Kafka acknowledged the event (acks=all); if Kafka does not
acknowledge in time the answer is 503 with Retry-After, and a retry with the same Idempotency-Key
can never produce a second event (its event id derives from the key). Reads of episode state are
served by the worker owning the child's partition, so they work with any number of workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import pydantic_core
from pydantic import BaseModel, ValidationError

from alerts import notified as notified_codec
from schemas.events import (
    AbsenceReported,
    Acknowledgement,
    CheckIn,
    ChildProfile,
    EpisodeUpdate,
    ReportCancelled,
    ReturnInterviewRecorded,
    ReturnReported,
)
from streams.episodes.state import episode_code_for
from streams.kafka.decode import field_errors, future_fields
from streams.web.access import (
    EPISODE_CODE,
    ApiError,
    acknowledger,
    check_child,
    child_in_scope,
    idempotency_key,
)
from streams.web.api_producer import ApiProducer
from streams.web.auth import (
    AddressLimiter,
    ApiKey,
    KeyRing,
    RateLimiter,
    Scope,
    bearer,
    load_checked_keys,
)
from streams.web.episode_index import EpisodeIndex
from streams.web.idempotency import IdempotencyCache, body_hash, event_id_for
from streams.web.openapi import build_openapi
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger

log = get_logger("missing_alerts.api")

Handler = Callable[..., Awaitable[Any]]


def problem(view: Any, exc: ApiError) -> Any:
    body: dict[str, Any] = {"error": exc.error}
    if exc.detail is not None:
        body["detail"] = exc.detail
    return view.json(body, status=exc.status, headers=exc.headers or None)


class Api:
    """Shared request handling: auth, body parsing, idempotency, durable produce."""

    def __init__(self, w: Wiring, r: Resources) -> None:
        self.w, self.r, self.settings = w, r, r.settings
        self.default_authority = r.policy.rota.default_local_authority
        self.producer = ApiProducer(r.settings)
        w.app.add_dependency(self.producer)
        self.keys: KeyRing = load_checked_keys(r.settings, r.policy.rota)
        # Every time read goes through the worker's one clock (streams/runtime/clock.py).
        seconds = lambda: r.clock.now().timestamp()  # noqa: E731
        self.limiter = RateLimiter(clock=seconds)
        # Requests without a valid key, per client address: brute force and floods are cheap
        # to refuse (429) before any key hashing.
        self.anonymous = AddressLimiter(r.settings.api_anonymous_per_minute, clock=seconds)
        self.replays = IdempotencyCache(clock=seconds)

    # -- checks ---------------------------------------------------------------------------

    def authenticate(self, request: Any, scope: Scope | tuple[Scope, ...]) -> ApiKey:
        """The request's key, if it holds ``scope`` (or one of them)."""
        peer = request.remote or "unknown"
        if not self.anonymous.has_budget(peer):
            raise ApiError(429, "rate_limited", None, {"Retry-After": "60"})
        key = self.keys.authenticate(bearer(request.headers.get("Authorization")))
        if key is None:
            self.anonymous.spend(peer)
            raise ApiError(
                401,
                "unauthorized",
                "send 'Authorization: Bearer <api key>'",
                {"WWW-Authenticate": "Bearer"},
            )
        wanted = (scope,) if isinstance(scope, Scope) else scope
        if not any(s in key.scopes for s in wanted):
            names = " or ".join(f"'{s.value}'" for s in wanted)
            raise ApiError(403, "forbidden", f"this key lacks the {names} scope")
        allowed, wait = self.limiter.allow(key)
        if not allowed:
            raise ApiError(429, "rate_limited", None, {"Retry-After": str(max(1, round(wait)))})
        return key

    def scope_child(self, key: ApiKey, given: str, *, authority: str | None = None) -> str:
        return child_in_scope(
            key, given, authority=authority, default_authority=self.default_authority
        )

    def check_child(self, key: ApiKey, child_ref: str) -> None:
        check_child(key, child_ref, self.default_authority)

    async def body(self, request: Any) -> tuple[bytes, dict[str, Any]]:
        ctype = (request.content_type or "").lower()
        if ctype != "application/json":
            raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
        limit = self.settings.api_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "payload_too_large", f"at most {limit} bytes")
        try:
            async with asyncio.timeout(self.settings.api_body_timeout_s):
                raw = await request.content.read(limit + 1)
        except TimeoutError:
            raise ApiError(408, "request_timeout", "the body did not arrive in time") from None
        if len(raw) > limit:
            raise ApiError(413, "payload_too_large", f"at most {limit} bytes")
        try:
            # Depth-limited (200 levels): hostile nesting is a 422, never a RecursionError.
            data = pydantic_core.from_json(raw)
        except ValueError:
            raise ApiError(
                422,
                "invalid",
                [{"field": "(body)", "message": "not valid JSON, or nested too deeply"}],
            ) from None
        if not isinstance(data, dict):
            raise ApiError(
                422, "invalid", [{"field": "(body)", "message": "expected a JSON object"}]
            )
        return raw, data

    # -- the write path -------------------------------------------------------------------

    async def accept(
        self,
        request: Any,
        scope: Scope,
        model: type[BaseModel],
        *,
        topic: Any,
        overrides: Callable[[dict[str, Any], ApiKey], dict[str, Any]] | None = None,
        answer: Callable[[Any], dict[str, Any]] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``answer``: more of the 202's body, from the event (kept for an idempotent replay)."""
        key = self.authenticate(request, scope)
        idem = idempotency_key(request.headers.get("Idempotency-Key"))
        raw, data = await self.body(request)
        hashed = body_hash(raw)
        if idem:
            seen = self.replays.get(key.id, idem)
            if seen is not None:
                if seen.body_hash != hashed:
                    raise ApiError(409, "conflict", "Idempotency-Key reused with a different body")
                return seen.status, seen.response, {"Idempotent-Replayed": "true"}
        now = self.r.clock.now()
        data.setdefault("occurred_at", now.isoformat())
        if overrides is not None:
            data.update(overrides(data, key))
        elif isinstance(data.get("child_ref"), str):
            data["child_ref"] = self.scope_child(key, data["child_ref"])
        if idem:
            data["event_id"] = str(event_id_for(key.id, idem))
        data.pop("type", None)
        try:
            event = model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(422, "invalid", field_errors(exc)) from None
        late = future_fields(event, now=now, skew_tolerance=self.settings.clock_skew_tolerance)
        if late:
            raise ApiError(422, "invalid", late)
        child_ref = str(getattr(event, "child_ref"))  # noqa: B009
        await self.produce(topic, child_ref, event)
        response = {"status": "accepted", "event_id": str(getattr(event, "event_id"))}  # noqa: B009
        if answer is not None:
            response.update(answer(event))
        if idem:
            self.replays.put(key.id, idem, hashed, 202, response)
        log.info(
            "api event accepted",
            event_type=getattr(event, "type", "?"),
            episode_code=getattr(event, "episode_code", None),
            child_ref=child_ref,
            key_id=key.id,
        )
        return 202, response, {}

    async def produce(self, topic: Any, child_ref: str, event: BaseModel) -> None:
        try:
            async with asyncio.timeout(self.settings.api_produce_timeout_s):
                fut = await self.producer.send(topic, event, child_ref)
                await fut
        except Exception as exc:
            log.warning("api produce failed", error=type(exc).__name__)
            raise ApiError(
                503,
                "unavailable",
                "the event store did not confirm; retry with the same Idempotency-Key",
                {"Retry-After": "5"},
            ) from None

    def child_for_code(self, code: str) -> str:
        if not EPISODE_CODE.match(code):
            raise ApiError(404, "not_found", "no episode with that code")
        raw = self.w.episode_codes.get(code.upper().encode())
        if raw is None:
            raise ApiError(404, "not_found", "no episode with that code")
        return bytes(raw).decode()

    def notified(self, code: str) -> list[str]:
        """People sent a message for the episode (dispatch's notified log)."""
        return notified_codec.decode(self.w.notified.get(code.upper().encode())).people

    def acknowledger(self, key: ApiKey, code: str, given: Any) -> dict[str, Any]:
        return acknowledger(key, given, self.notified(code))


def wire_api(w: Wiring, r: Resources, index: EpisodeIndex) -> Api:
    """``index``: the duty desk's read model, for the episode code a report opens or joins."""
    api = Api(w, r)

    def route(path: str, handlers: dict[str, Handler]) -> None:
        """Register a view whose methods turn ApiError into a JSON problem response."""

        def wrap(fn: Handler) -> Handler:
            async def method(view: Any, request: Any, **kwargs: Any) -> Any:
                try:
                    status, body, headers = await fn(request, **kwargs)
                except ApiError as exc:
                    return problem(view, exc)
                return view.json(body, status=status, headers=headers or None)

            return method

        name = "Api" + "".join(c for c in path.title() if c.isalnum())
        w.app.page(path)(type(name, (faust.web.View,), {m: wrap(f) for m, f in handlers.items()}))

    def by_code(code: str, **extra: Any) -> Callable[[dict[str, Any], ApiKey], dict[str, Any]]:
        """Episode-scoped writes name the episode; the child comes from the code directory."""

        def fill(_data: dict[str, Any], key: ApiKey) -> dict[str, Any]:
            child = api.child_for_code(code)
            api.check_child(key, child)
            return {"episode_code": code.upper(), "child_ref": child, **extra}

        return fill

    async def post_check_in(request: Any) -> Any:
        return await api.accept(request, Scope.EVENTS_WRITE, CheckIn, topic=w.events)

    def episode_of(event: AbsenceReported) -> dict[str, Any]:
        # The open episode it joins as the read model knows it now, else the one it opens
        # (the code derives from the opening event: streams/episodes/state.py).
        code = index.open_code(event.child_ref) or episode_code_for(event.child_ref, event.event_id)
        return {"episode_code": code}

    async def post_absence(request: Any) -> Any:
        return await api.accept(
            request, Scope.EVENTS_WRITE, AbsenceReported, topic=w.events, answer=episode_of
        )

    async def post_return(request: Any) -> Any:
        return await api.accept(request, Scope.EVENTS_WRITE, ReturnReported, topic=w.events)

    async def post_update(request: Any, code: str) -> Any:
        return await api.accept(
            request, Scope.EVENTS_WRITE, EpisodeUpdate, topic=w.events, overrides=by_code(code)
        )

    async def post_rhi(request: Any, code: str) -> Any:
        return await api.accept(
            request,
            Scope.EVENTS_WRITE,
            ReturnInterviewRecorded,
            topic=w.events,
            overrides=by_code(code),
        )

    async def post_ack(request: Any, code: str) -> Any:
        def fill(data: dict[str, Any], key: ApiKey) -> dict[str, Any]:
            scoped = by_code(code, via="api")(data, key)
            return {**scoped, **api.acknowledger(key, code, data.get("recipient_id"))}

        return await api.accept(
            request, Scope.ACKNOWLEDGE, Acknowledgement, topic=w.events, overrides=fill
        )

    async def post_cancel(request: Any, code: str) -> Any:
        def fill(data: dict[str, Any], key: ApiKey) -> dict[str, Any]:
            return {**by_code(code)(data, key), "api_key_id": key.id}

        return await api.accept(
            request, Scope.EPISODES_CANCEL, ReportCancelled, topic=w.events, overrides=fill
        )

    async def put_profile(request: Any, ref: str) -> Any:
        def fill(data: dict[str, Any], key: ApiKey) -> dict[str, Any]:
            named = data.get("local_authority")
            return {
                "child_ref": api.scope_child(
                    key, ref, authority=named if isinstance(named, str) else None
                )
            }

        return await api.accept(
            request, Scope.PROFILES_WRITE, ChildProfile, topic=w.profiles, overrides=fill
        )

    route("/v1/check-ins", {"post": post_check_in})
    route("/v1/absences", {"post": post_absence})
    route("/v1/returns", {"post": post_return})
    route("/v1/episodes/{code}/updates", {"post": post_update})
    route("/v1/episodes/{code}/return-interview", {"post": post_rhi})
    route("/v1/episodes/{code}/acknowledgements", {"post": post_ack})
    route("/v1/episodes/{code}/cancellation", {"post": post_cancel})
    route("/v1/children/{ref}/profile", {"put": put_profile})

    document = build_openapi()

    @w.app.page("/openapi.json")
    class OpenApi(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any) -> Any:
            return self.json(document)

    return api
