"""One exception type for every configuration problem, carrying a one-line message."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """Raised with a message fit for one line on stderr: where, which field, what is wrong."""


def describe_validation_error(where: str, exc: ValidationError, *, env_prefix: str = "") -> str:
    """Name the first failing field the way an operator would write it (env var or YAML path)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        if env_prefix:
            loc = env_prefix + loc.upper()
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return f"{where}: " + "; ".join(parts) + more
