"""Render an alert for a channel. Pure: the context is built only from non-personal alert fields,
so no template can put a name, address or medical note into an SMS even by mistake."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config.policy import Templates
from schemas.alerts import Alert, Channel, RepeatCount
from schemas.common import Category, split_child_ref

SMS_PREFIX = "MISSING-ALERT:"


def _local(ts: datetime, zone: ZoneInfo) -> str:
    return ts.astimezone(zone).strftime("%a %d %b %H:%M")


def _elapsed(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def alert_context(
    alert: Alert, *, base_url: str, timezone: str = "Europe/London"
) -> dict[str, Any]:
    zone = ZoneInfo(timezone)
    return {
        "prefix": SMS_PREFIX,
        # The reference as the authority's own case system writes it (no "@authority").
        "child_ref": split_child_ref(alert.child_ref)[0],
        "initials": alert.initials or "??",
        "category_label": "MISSING" if alert.category is Category.MISSING else "AWAY",
        "tier": alert.tier.value,
        "last_seen": _local(alert.last_seen_at, zone),
        "elapsed": _elapsed(alert.last_seen_at, alert.occurred_at),
        "episode_code": alert.episode_code,
        "link": "",  # each message gets its own signed link (alerts/fanout.py)
        "profile_missing": alert.profile_missing,
        "local_authority": alert.local_authority or "unknown",
        "rhi_due": _local(alert.rhi_due_at, zone) if alert.rhi_due_at else "(not known)",
        "returned": _local(alert.returned_at, zone) if alert.returned_at else "(not known)",
        "reason": _repeat_reason(alert.repeat),
        "cancel_reason": CANCEL_REASONS.get(alert.cancel_reason or "", "withdrawn"),
    }


# What a cancelled notice says of each reason code (schemas/events.py, ReportCancelled).
CANCEL_REASONS = {
    "not_missing": "the child was not missing",
    "duplicate_report": "it repeated another report",
    "wrong_child": "it named the wrong child",
    "other": "withdrawn by the duty team",
}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _window(window: timedelta) -> str:
    days, rest = divmod(int(window.total_seconds()), 86_400)
    if rest == 0:
        return f"{days} day" if days == 1 else f"{days} days"
    hours = int(window.total_seconds() // 3600)
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def _repeat_reason(repeat: RepeatCount | None) -> str:
    """The policy's own count and window, as the engine counted them."""
    if repeat is None:
        return "repeated episodes"
    return f"{_ordinal(repeat.episodes)} episode missing or away within {_window(repeat.window)}"


def render(
    templates: Templates, alert: Alert, channel: Channel, context: dict[str, Any]
) -> tuple[str | None, str]:
    """(subject, body); an email template's first line 'Subject: ...' becomes the subject."""
    text = templates.render(alert.template, channel, context)
    if channel is Channel.EMAIL and text.startswith("Subject:"):
        first, _, rest = text.partition("\n")
        return first.removeprefix("Subject:").strip(), rest.strip()
    return None, text
