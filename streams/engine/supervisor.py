"""Starts the episode engine beside the worker and watches it.

The engine runs as a child process (streams/engine/process.py: why, and what it serves). The
worker gives it the same environment, stops it on shutdown (SIGTERM: it finishes its batch,
commits and leaves its group), and goes down itself if the engine dies, so an orchestrator
restarts the pair: a worker answering API calls while nothing escalates would be worse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from typing import Any

from mode import Service

from config.settings import Settings
from streams.engine.contract import PARENT_ENV, PORT_ENV
from streams.runtime.gc import GcPolicy
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger

log = get_logger("missing_alerts.engine_supervisor")

# How the engine ends when asked to (streams/engine/process.py exits 0 after SIGTERM/SIGINT or
# when its parent is gone; a signal before its handlers are installed ends it by the signal).
STOPPED_ON_REQUEST = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EngineProcess(Service):  # type: ignore[misc]
    def __init__(self, settings: Settings, app: Any, **kwargs: Any) -> None:
        self.settings = settings
        self.app = app
        host = settings.web_host
        self.port = settings.engine_port or _free_port(host)
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.local_url = f"http://{local}:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        # Set when the engine died under us: the worker then exits non-zero (streams/cli.py).
        self.failed_with: int | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        env = {
            **os.environ,
            PORT_ENV: str(self.port),
            PARENT_ENV: str(os.getpid()),
            "MISSING_ALERTS_LOG_LEVEL": self.settings.log_level,
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.engine.process", env=env
        )
        log.info("engine process spawned", pid=self.proc.pid, port=self.port)
        self.add_future(self._watch())

    async def _watch(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._stopping:
            return
        if code in STOPPED_ON_REQUEST:
            # A SIGTERM to the process group (docker stop, Ctrl-C, the tests) reaches the engine
            # too, and it may finish before this process handles its own copy: a stop, not a
            # failure.
            log.info("engine process stopped; stopping the worker", exit_code=code)
        else:
            log.error("engine process exited; stopping the worker", exit_code=code)
            self.failed_with = code
        # The same orderly shutdown as an operator's SIGTERM: dispatch finishes what it has in
        # flight, offsets are committed, the group is left.
        os.kill(os.getpid(), signal.SIGTERM)

    async def on_stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def wire_engine(w: Wiring, r: Resources) -> EngineProcess:
    settings = r.settings
    if settings.gc_freeze_interval_s > 0:
        policy = GcPolicy(settings.gc_freeze_interval_s, settings.gc_full_interval_s)

        @w.app.task
        async def gc_rounds() -> None:
            await policy.run()

    engine = EngineProcess(r.settings, w.app)
    w.app.add_dependency(engine)
    return engine
