"""Wiring of the rota and API-key reload (streams/worker/config_reload.py) into the worker:
what a new rota or key file replaces, the poll timer and SIGHUP.

What is reloaded, and what is not: the rota (people, their numbers, who holds each role, office
hours, bank holidays) and the API keys, in this worker. Dispatch resolves people from the rota
when it sends, so every step that falls due after the change reaches whoever the new rota names.
Escalation ladders, risk rules and templates are decided by the engine process and need a
restart (docs/duty-desk.md).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from config.loading import load_policy
from config.policy import Policy, Rota
from streams.dispatch.pipeline import Dispatcher
from streams.web.api import Api
from streams.web.auth import KeyRing, check_responders, load_checked_keys
from streams.worker.config_reload import Reloader, Watched
from streams.worker.wiring import Resources, Wiring


def wire_config_reload(w: Wiring, r: Resources, api: Api, dispatcher: Dispatcher) -> Reloader:
    settings = r.settings
    keys_path = settings.resolved_api_keys_file

    def load_rota() -> Rota:
        # The whole policy directory is checked (the rota must still cover every ladder's roles
        # and police routing), and the keys in use must still name people in it.
        rota = load_policy(settings.policy_dir).rota
        check_responders(api.keys, rota, keys_path)
        return rota

    def apply_rota(rota: Rota) -> None:
        old = r.policy
        r.policy = Policy(old.risk, old.escalation, rota, old.templates)
        dispatcher.policy = r.policy
        api.default_authority = rota.default_local_authority

    def load_keys() -> KeyRing:
        return load_checked_keys(settings, r.policy.rota)

    def apply_keys(ring: KeyRing) -> None:
        api.keys = ring

    reloader = Reloader(
        [
            Watched("rota", settings.policy_dir / "rota.yaml", load_rota, apply_rota),
            Watched("api_keys", keys_path, load_keys, apply_keys),
        ],
        count=lambda kind, outcome: r.metrics.config_reloads.labels(
            kind=kind, outcome=outcome
        ).inc(),
    )

    @w.app.timer(interval=settings.config_reload_interval_s, name="config-reload")
    async def poll() -> None:
        reloader.check()

    @w.app.task
    async def on_sighup() -> None:
        # SIGHUP is the operator's "reload now" (mode handles INT, TERM, USR1 and USR2 only).
        loop: Any = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reloader.check)

    return reloader
