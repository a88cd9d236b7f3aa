"""structlog set-up with a redaction processor.

Child data is special-category personal data: a developer logging a whole model must not leak a
name, address or medical note, so redaction works on field names, recursively, after the fact.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from schemas.events import personal_field_names

REDACTED = "[redacted]"
_SECRET_HINTS = ("password", "token", "secret", "auth", "api_key")


def _is_sensitive(key: str, personal: frozenset[str]) -> bool:
    lowered = key.lower()
    return key in personal or any(hint in lowered for hint in _SECRET_HINTS)


def redact_value(value: Any, personal: frozenset[str]) -> Any:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _is_sensitive(str(k), personal) else redact_value(v, personal)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v, personal) for v in value]
    return value


def make_redactor(
    personal: frozenset[str] | None = None,
) -> structlog.types.Processor:
    fields = personal if personal is not None else personal_field_names()

    def redact(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key == "event":
                continue
            if _is_sensitive(key, fields):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = redact_value(event_dict[key], fields)
        return event_dict

    return redact


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Route structlog and stdlib (Faust, aiokafka) through one redacting pipeline."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        make_redactor(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)  # type: ignore[no-any-return]
