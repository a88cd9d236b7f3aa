"""The small HTML pages behind links in messages (acknowledge, record an interview).

They carry the link's token in their URL, so: no referrer, no caching, no framing, no scripts;
their one form posts back to this origin. Everything shown is escaped.
"""

from __future__ import annotations

import html
from typing import Any

_STYLE = "font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em"
LINK_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def page(title: str, text: str, extra: str = "") -> str:
    """``extra`` is trusted markup built by the caller (a form); title and text are escaped."""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><body style='{_STYLE}'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{extra}"
    )


INVALID_LINK = page(
    "Link not valid",
    "This link is invalid or has expired. Reply ACK and the episode code to the SMS instead.",
)


def html_response(view: Any, body: str, status: int = 200) -> Any:
    return view.html(body, status=status, headers=dict(LINK_PAGE_HEADERS))
