"""The episode engine as its own OS process, started and watched by the worker.

Why a process: the engine is CPU-bound batch work, while the rest of the worker (the HTTP API,
dispatch, Faust's global tables) is latency-bound. In one process they share one core and one
event loop, so a 500-record batch delays every API answer behind it, and the engine loses a
third of its core to the rest (docs/episode-engine.md). As two processes each gets a core.

The worker (parent) runs ``python -m streams.engine.process`` with its own environment plus
``MISSING_ALERTS_ENGINE_PORT``; the child serves, on that port, only what the parent needs:

- ``GET /internal/state/{child}``: the child's stored state, from this engine if it holds the
  partition, else forwarded once to the engine that does (the group's owner map); 404 when
  there is none, 503 while partitions move. Requests carry an HMAC of the path made with the
  link secret, so the port does not hand child data to whoever can reach it.
- ``GET /metrics``: the engine's metrics, merged into the worker's own /metrics page.

The child exits when the parent dies (it polls its parent pid), so a SIGKILLed worker never
leaves an engine behind holding partitions.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import signal
import sys

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import generate_latest

from config.errors import ConfigError
from config.loading import load_policy
from config.settings import Settings, load_settings
from streams.engine.contract import (
    METRICS_PATH,
    PARENT_ENV,
    PORT_ENV,
    ROUTED_HEADER,
    STATE_PATH,
    TOKEN_HEADER,
    fetch_state,
    internal_token,
)
from streams.engine.kafka_io import KafkaSink, KafkaSource, TransactionalSink, kafka_restore
from streams.engine.loop import Engine, partition_counts
from streams.engine.output import EngineTopics
from streams.engine.store import open_store
from streams.runtime.clock import clock_from_settings
from streams.runtime.gc import GcPolicy
from telemetry.logging import configure_logging, get_logger
from telemetry.metrics import Metrics

log = get_logger("missing_alerts.engine_process")


def advertised_url(settings: Settings, port: int) -> str:
    host = settings.engine_advertised_host or settings.web_host
    if host in ("0.0.0.0", "::", ""):
        import socket

        host = socket.gethostname()
    return f"http://{host}:{port}"


def build_web(engine: Engine, metrics: Metrics, key: bytes) -> web.Application:
    app = web.Application()
    session: dict[str, ClientSession] = {}

    async def state(request: web.Request) -> web.StreamResponse:
        child = request.match_info["child"]
        path = STATE_PATH.format(child=child)
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given, internal_token(key, path)):
            return web.Response(status=403, text="forbidden")
        child_key = child.encode()
        partition = engine.partition_of(child_key)
        if partition in engine.owned:
            raw = engine.store.get(partition, child_key)
            if raw is None:
                return web.Response(status=404, text="no state")
            return web.Response(body=raw, content_type="application/octet-stream")
        owner = engine.owners.get(partition)
        if not owner or owner == engine.url or request.headers.get(ROUTED_HEADER):
            return web.Response(status=503, text="partition moving", headers={"Retry-After": "1"})
        if "client" not in session:
            session["client"] = ClientSession(timeout=ClientTimeout(total=5))
        status, body = await fetch_state(session["client"], owner, child, key, routed=True)
        return web.Response(status=status, body=body)

    async def metrics_page(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(metrics.registry), content_type="text/plain")

    async def close_session(_app: web.Application) -> None:
        if "client" in session:
            await session["client"].close()

    app.router.add_get(STATE_PATH, state)
    app.router.add_get(METRICS_PATH, metrics_page)
    app.on_cleanup.append(close_session)
    return app


async def _refresh_lag(engine: Engine, metrics: Metrics, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if not engine.ready.is_set():
            continue
        try:
            metrics.set_consumer_lag(await engine.source.lag())
        except Exception as exc:  # broker away: keep the last values
            log.debug("engine consumer lag not refreshed", error=type(exc).__name__)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("worker process gone; engine stopping")
            stop.set()
            return
        await asyncio.sleep(0.5)


async def run(settings: Settings, port: int) -> None:
    policy = load_policy(settings.policy_dir)
    metrics = Metrics(enabled=settings.metrics_enabled)
    store = open_store(settings.store, settings.data_dir / "engine" / settings.app_id)
    stop = asyncio.Event()
    crashed: list[BaseException] = []

    def crash(exc: BaseException) -> None:
        crashed.append(exc)
        stop.set()

    url = advertised_url(settings, port)
    topics = EngineTopics.from_settings(settings)
    source = KafkaSource(settings, topics.inputs, url)
    engine = Engine(
        settings,
        policy,
        clock_from_settings(settings),
        metrics,
        store,
        source=source,
        sink=(
            TransactionalSink(
                settings,
                partition_counts(settings),
                outside=frozenset({topics.codes_changelog, topics.views_changelog}),
            )
            if settings.processing_guarantee == "exactly_once"
            else KafkaSink(settings, source, partition_counts(settings))
        ),
        restore=kafka_restore(settings),
        url=url,
        on_crash=crash,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_web(engine, metrics, settings.link_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, port)
    await site.start()
    await engine.start()
    log.info("engine process started", port=port)
    tasks = [
        asyncio.create_task(_watch_parent(int(os.environ.get(PARENT_ENV, os.getppid())), stop)),
    ]
    if settings.gc_freeze_interval_s > 0:
        # Fewer full collections: less CPU spent re-walking long-lived state (streams/gc_tuning).
        gc_policy = GcPolicy(settings.gc_freeze_interval_s, settings.gc_full_interval_s)
        tasks.append(asyncio.create_task(gc_policy.run()))
    if metrics.enabled:
        tasks.append(
            asyncio.create_task(_refresh_lag(engine, metrics, settings.metrics_lag_interval_s))
        )
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await engine.stop()
        await runner.cleanup()
    if crashed:
        raise SystemExit(3)


def main() -> None:
    # The worker reloads its rota on SIGHUP; the engine has nothing to reload and must not die
    # of a SIGHUP sent to the whole process group.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    port = int(os.environ[PORT_ENV])
    asyncio.run(run(settings, port))


if __name__ == "__main__":
    main()
