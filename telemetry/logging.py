"""structlog set-up with a redaction processor.

Child data is special-category personal data: a developer logging a whole model must not leak a
name, address or medical note, so redaction works on field names, recursively, after the fact.

One pipeline for everything: structlog calls and stdlib records (Faust, mode, aiokafka, aiohttp,
twilio) are rendered by the same processors, as JSON lines in production and as console lines
in development. Lines about an episode carry ``episode_code`` and ``child_ref`` (never a name);
``log_engine_effects`` and ``structlog.contextvars`` binding in dispatch provide them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final

import structlog

from schemas.alerts import Alert
from schemas.events import personal_field_names
from schemas.records import EpisodeRecord

REDACTED = "[redacted]"
_SECRET_HINTS = ("password", "token", "secret", "auth", "api_key")


def _is_sensitive(key: str, personal: frozenset[str]) -> bool:
    lowered = key.lower()
    return key in personal or any(hint in lowered for hint in _SECRET_HINTS)


_PLAIN: Final = (str, int, float, bool, type(None))


def redact_value(value: Any, personal: frozenset[str]) -> Any:
    if type(value) in _PLAIN:  # most values of most lines: nothing to walk
        return value
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
    # Log lines reuse a handful of keys: decide each key once.
    verdicts: dict[str, bool] = {}

    def sensitive(key: str) -> bool:
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = _is_sensitive(key, fields)
            if len(verdicts) < 4096:  # bounded even if someone logs a dict's keys
                verdicts[key] = verdict
        return verdict

    def redact(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key == "event":
                continue
            if sensitive(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = redact_value(event_dict[key], fields)
        return event_dict

    return redact


# Phone numbers (E.164) and email addresses in free text: a library that logs a request line
# (twilio's client logs the form it posts at INFO) must not put a recipient in the logs.
_PHONE = re.compile(r"\+\d[\d ]{6,16}\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Loggers whose INFO lines carry request details (URLs with numbers, posted form bodies).
NOISY_LOGGERS: Final = ("twilio",)


def mask_contacts(text: str) -> str:
    return _EMAIL.sub("[email]", _PHONE.sub("[phone]", text))


def _mask_event_text(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event = event_dict.get("event")
    if isinstance(event, str) and ("@" in event or "+" in event):
        event_dict["event"] = mask_contacts(event)
    return event_dict


_EPISODE_CODE = re.compile(r"^[A-Z0-9]{4,12}$")


def episode_code_of(notification_id: str) -> str | None:
    """The episode code a notification id starts with (``episode:step:recipient:channel``),
    for log lines that only have the id, e.g. a delivery receipt."""
    code = notification_id.partition(":")[0]
    return code if _EPISODE_CODE.match(code) else None


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Route structlog and stdlib (Faust, aiokafka) through one redacting pipeline."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        make_redactor(),
        _mask_event_text,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # filter_by_level first: a debug line below the level costs a check, not a pipeline.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
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
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)  # type: ignore[no-any-return]


# Non-personal detail keys of episode records worth a log line (see docs/episode-engine.md,
# "Records"): tiers, categories, reasons. Everything else stays on the audit topic only.
_RECORD_LOG_KEYS: Final = ("tier", "category", "from", "to", "how", "reason", "assessed_tier")
# step_fired duplicates "alert decided"; the frequent or routine ones go to DEBUG.
_RECORD_DEBUG: Final = frozenset({"sighting", "updated", "ignored"})


def log_engine_effects(
    log: Any,
    alerts: Iterable[tuple[bytes, Alert]],
    records: Iterable[tuple[bytes, EpisodeRecord]],
) -> None:
    """One line per decided alert and per episode transition, each with the episode code and
    the child reference, so an operator can follow an episode through the logs."""
    for _key, rec in records:
        if rec.action == "step_fired":
            continue
        detail = rec.detail.as_dict()
        fields = {k: detail[k] for k in _RECORD_LOG_KEYS if k in detail}
        emit = log.debug if rec.action in _RECORD_DEBUG else log.info
        emit(
            f"episode {rec.action}",
            episode_code=rec.episode_code,
            child_ref=rec.child_ref,
            **fields,
        )
    for _key, alert in alerts:
        log.info(
            "alert decided",
            episode_code=alert.episode_code,
            child_ref=alert.child_ref,
            step_id=alert.step_id,
            kind=alert.kind.value,
            tier=alert.tier.value,
        )
