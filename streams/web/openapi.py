"""The OpenAPI document, generated from the same pydantic models that validate requests, so the
contract integrators read cannot drift from the one the server enforces."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

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
from streams.episodes.views import EpisodeSummary
from streams.web.episode_query import MAX_CLOSED_DAYS, MAX_LIMIT, STATUSES

REF = "#/components/schemas/{model}"

# (method, path, model or None, scope, summary, path-owned fields the body may omit)
WRITES: list[tuple[str, str, type[BaseModel], str, str, tuple[str, ...]]] = [
    ("post", "/v1/check-ins", CheckIn, "events:write", "Child seen / present", ()),
    ("post", "/v1/absences", AbsenceReported, "events:write", "Report a child absent", ()),
    ("post", "/v1/returns", ReturnReported, "events:write", "Report a child returned or found", ()),
    (
        "post",
        "/v1/episodes/{code}/updates",
        EpisodeUpdate,
        "events:write",
        "New information on an open episode",
        ("episode_code", "child_ref"),
    ),
    (
        "post",
        "/v1/episodes/{code}/return-interview",
        ReturnInterviewRecorded,
        "events:write",
        "Record a return home interview offered / accepted",
        ("episode_code", "child_ref"),
    ),
    (
        "post",
        "/v1/episodes/{code}/acknowledgements",
        Acknowledgement,
        "acknowledge",
        "Acknowledge an episode (as someone who was messaged, or as the key's responder)",
        ("episode_code", "child_ref", "via", "basis", "api_key_id"),
    ),
    (
        "post",
        "/v1/episodes/{code}/cancellation",
        ReportCancelled,
        "episodes:cancel",
        "Cancel a false report: the episode stops, everyone told hears, no SSDA903 period",
        ("episode_code", "child_ref", "api_key_id"),
    ),
    (
        "put",
        "/v1/children/{ref}/profile",
        ChildProfile,
        "profiles:write",
        "Create or replace a child's profile (Philomena)",
        ("child_ref",),
    ),
]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            ]
        },
    },
    "required": ["error"],
}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request",
        401: "No or unknown API key",
        403: "Outside the key's scope",
        404: "Unknown episode",
        408: "Body not received in time",
        409: "Idempotency-Key reused with another body",
        413: "Body too large",
        415: "Content-Type must be application/json",
        422: "Invalid body: list of field errors",
        429: "Rate limited (Retry-After)",
        503: "Event store unavailable (Retry-After); retry with the same Idempotency-Key",
    }
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": text[c], "content": {"application/json": {"schema": ref}}}
        for c in codes
    }


def build_openapi(version: str = "1.0.0") -> dict[str, Any]:
    _, defs = models_json_schema([(w[2], "validation") for w in WRITES], ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    schemas["Accepted"] = {
        "type": "object",
        "properties": {"status": {"const": "accepted"}, "event_id": {"type": "string"}},
        "required": ["status", "event_id"],
    }
    paths: dict[str, Any] = {}
    for method, path, model, scope, summary, owned in WRITES:
        params: list[dict[str, Any]] = [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "Same key + body: the first response again, never a 2nd event.",
            }
        ]
        if "{code}" in path:
            params.append(
                {
                    "name": "code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{4,12}$"},
                }
            )
        if "{ref}" in path:
            params.append(
                {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        note = f" Fields taken from the path: {', '.join(owned)}." if owned else ""
        paths.setdefault(path, {})[method] = {
            "summary": summary,
            "description": f"Requires scope `{scope}`. `occurred_at` defaults to now; `type` is "
            f"implied by the route.{note} Answered 202 only after Kafka acknowledged the event.",
            "security": [{"apiKey": []}],
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}
                },
            },
            "responses": {
                "202": {
                    "description": "Accepted (durably stored)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                    },
                },
                **_errors(401, 403, 404, 408, 409, 413, 415, 422, 429, 503),
            },
        }
    paths["/v1/episodes/{code}"] = {
        "get": {
            "summary": "An episode: tier, category, timeline, acknowledgements, who was told",
            "description": "Requires scope `episodes:read`. Served by the worker owning the "
            "child; `notifications` (role, channel, delivery status per person) come from the "
            "episode-notifications table on any worker; addresses only with `contacts:read`. "
            "no-store. See docs/duty-desk.md.",
            "security": [{"apiKey": []}],
            "parameters": [
                {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "Episode state",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(401, 403, 404),
            },
        }
    }
    paths["/v1/episodes"] = _episode_list()
    paths["/v1/episodes/{code}/status"] = {
        "get": {
            "summary": "What a carer sees: open, closed or cancelled; acknowledged by whom, when",
            "description": "Requires scope `events:write` or `episodes:read`; another "
            "authority's episode is 404. From the read model on any worker; no-store.",
            "security": [{"apiKey": []}],
            "parameters": [
                {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "Status",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(401, 403, 404),
            },
        }
    }
    schemas["EpisodeSummary"] = EpisodeSummary.model_json_schema(ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "missing-alerts API",
            "version": version,
            "description": "Report children missing from care, their return and check-ins; "
            "read and acknowledge episodes. See docs/api.md.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _episode_list() -> dict[str, Any]:
    """The duty desk's list (streams/web/episode_list.py); the limits are that module's."""
    page = {
        "type": "object",
        "properties": {
            "episodes": {
                "type": "array",
                "items": {"$ref": REF.format(model="EpisodeSummary")},
            },
            "next_cursor": {"type": ["string", "null"]},
            "total": {"type": "integer", "description": "How many match, on every page"},
        },
        "required": ["episodes", "next_cursor", "total"],
    }
    return {
        "get": {
            "summary": "Episodes of the key's local authorities: open first, high risk first, "
            "then the longest missing",
            "description": "Requires scope `episodes:read`. Answered by any worker from its "
            "copy of the episode-views table; `Cache-Control: no-store`. See docs/duty-desk.md.",
            "security": [{"apiKey": []}],
            "parameters": [
                _query("status", {"enum": list(STATUSES), "default": "open"}, "Which episodes"),
                _query(
                    "local_authority",
                    {"type": "string", "maxLength": 64},
                    "One of the key's authorities (default: all of them)",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
                    "Page size",
                ),
                _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                _query(
                    "closed_days",
                    {"type": "integer", "minimum": 0, "maximum": MAX_CLOSED_DAYS, "default": 7},
                    "How far back closed episodes go",
                ),
            ],
            "responses": {
                "200": {
                    "description": "One page of episodes",
                    "content": {"application/json": {"schema": page}},
                },
                **_errors(400, 401, 403),
            },
        }
    }
