"""The worker's HTTP server settings that Faust does not expose.

Faust builds its aiohttp runner with aiohttp's defaults, among them a keep-alive timeout of
about an hour that is also the only bound on how long a connection may take to send its
request headers: a client dribbling a header byte a minute (slowloris) holds a connection
for an hour, and a few hundred of them exhaust the worker's file descriptors. aiohttp starts
that timer when a connection opens and after every response, and closes a connection that
has not delivered a complete request when it fires, so setting it to WEB_HEADER_TIMEOUT_S
bounds both idle keep-alive connections and slow headers. (Behind a reverse proxy with its
own keep-alive, set WEB_HEADER_TIMEOUT_S above the proxy's idle timeout.)
"""

from __future__ import annotations

from typing import Any

from aiohttp.web import AppRunner

from config.settings import Settings


def harden_web_server(app: Any, settings: Settings) -> None:
    """Call before the app starts: replaces the runner Faust's web driver made."""
    web = app.web
    web._runner = AppRunner(
        web.web_app,
        access_log=None,
        keepalive_timeout=settings.web_header_timeout_s,
        max_line_size=8190,
        max_field_size=8190,
    )
