"""The browser pages served by the worker's own web server: GET /carer (carers report an
absence, docs/carer-page.md) and GET /desk (duty teams follow open episodes, docs/duty-desk.md).

The pages are static: they hold no data and call the same /v1 API as any integrator, with the
API key the user pastes in (kept in the tab's sessionStorage only). The files are package data,
read once when the app is wired, and served with a strict Content-Security-Policy: scripts and
styles from this origin only, no inline code, requests to this origin only, no framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import faust

from config.errors import ConfigError
from streams.worker.wiring import Resources, Wiring

CARER_PATH = "/carer"
DESK_PATH = "/desk"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Small files, revalidated each time so a deployment is picked up at once.
    "Cache-Control": "no-cache",
}

# url path -> (file in streams/web/static, content type)
ASSETS: dict[str, tuple[str, str]] = {
    "/static/common.js": ("common.js", "text/javascript"),  # what both pages' scripts share
    CARER_PATH: ("carer.html", "text/html"),
    f"{CARER_PATH}/carer.js": ("carer.js", "text/javascript"),
    f"{CARER_PATH}/carer.css": ("carer.css", "text/css"),
    f"{CARER_PATH}/icon.svg": ("icon.svg", "image/svg+xml"),
    # The desk shares the carer page's house style (carer.css) and adds its own layout.
    DESK_PATH: ("desk.html", "text/html"),
    f"{DESK_PATH}/desk.js": ("desk.js", "text/javascript"),
    f"{DESK_PATH}/desk.css": ("desk.css", "text/css"),
}


@dataclass(frozen=True)
class Asset:
    text: str
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Read every asset from the package once; a missing file stops start-up with its name."""
    static = resources.files("streams.web").joinpath("static")
    loaded: dict[str, Asset] = {}
    for path, (name, content_type) in ASSETS.items():
        try:
            text = static.joinpath(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"streams/web/static/{name}: cannot read: {exc}") from None
        loaded[path] = Asset(text, content_type)
    return loaded


def wire_pages(w: Wiring, _r: Resources) -> None:
    for path, asset in load_assets().items():
        _register(w, path, asset)


def _register(w: Wiring, path: str, asset: Asset) -> None:
    async def get(view: Any, request: Any) -> Any:
        # aiohttp adds "; charset=utf-8" to text responses.
        return view.text(
            asset.text, content_type=asset.content_type, headers=dict(SECURITY_HEADERS)
        )

    name = "Page" + "".join(c for c in path.title() if c.isalnum())
    w.app.page(path)(type(name, (faust.web.View,), {"get": get}))
