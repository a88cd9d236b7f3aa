"""Prometheus on the worker's own web server: ``/metrics``, Faust's sensor, HTTP and lag metrics.

``wire_metrics`` is the one call create_app makes. It puts Faust's own Prometheus sensor
(faust.sensors.prometheus: messages, table operations, commits, rebalances, producer latency) on
the pipeline's registry, extended to count requests by route *template* (Faust hands every view
to its sensor, and a view knows the template it was registered under, so raw paths with episode
codes or tokens never become labels), and starts a timer that refreshes the consumer-lag gauge.
With metrics disabled, Faust keeps its default monitor and ``/metrics`` answers an empty page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from aiohttp import ClientError, ClientTimeout
from aiohttp.web import Response
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client.exposition import choose_encoder

from streams.engine.contract import METRICS_PATH as ENGINE_METRICS_PATH
from streams.kafka.lag import read_lag
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger
from telemetry.metrics import FAUST_PREFIX, Metrics
from telemetry.metrics_merge import merged_registry

log = get_logger("missing_alerts.metrics")

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "unmatched"


class PipelineMonitor(PrometheusMonitor):  # type: ignore[misc]
    """Faust's Prometheus sensor plus requests by route template, method and status."""

    def __init__(self, metrics: Any, pipeline: Metrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self._pipeline = pipeline

    def on_web_request_end(
        self,
        app: Any,
        request: Any,
        response: Any,
        state: dict[str, Any],
        *,
        view: Any = None,
    ) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        route = getattr(view, "view_path", None) or UNMATCHED_ROUTE
        status = response.status if response is not None else 500
        seconds = float(state.get("latency_end", 0.0))
        self._pipeline.http_request(route, request.method, status, seconds)


async def metrics_body(encode: Callable[[Any], bytes], registry: Any, engine_text: str) -> bytes:
    """Collecting, parsing, merging and encoding a few thousand series is CPU work: it runs
    off the event loop, or every scrape stalls /healthz and the API behind it."""
    return await asyncio.to_thread(lambda: encode(merged_registry(registry, engine_text)))


def wire_metrics(w: Wiring, r: Resources) -> None:
    metrics = r.metrics
    registry = metrics.registry
    engine = w.engine_handle()

    @w.app.page(METRICS_PATH)
    class MetricsPage(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any) -> Any:
            # The format the scraper asks for: OpenMetrics for Prometheus, else text 0.0.4.
            encode, content_type = choose_encoder(request.headers.get("Accept", ""))
            if not metrics.enabled:
                return Response(body=encode(registry), headers={"Content-Type": content_type})
            engine_text = ""
            try:  # the engine process's part (streams/engine/process.py)
                async with w.app.http_client.get(
                    f"{engine.local_url}{ENGINE_METRICS_PATH}", timeout=ClientTimeout(total=3)
                ) as response:
                    if response.status == 200:
                        engine_text = await response.text()
            except (ClientError, OSError, TimeoutError) as exc:
                log.warning("engine metrics not reachable", error=type(exc).__name__)
            body = await metrics_body(encode, registry, engine_text)
            return Response(body=body, headers={"Content-Type": content_type})

    if not metrics.enabled:
        return
    w.app.monitor = PipelineMonitor(
        metrics=FaustMetrics.create(registry, FAUST_PREFIX), pipeline=metrics
    )
    dispatch_topics = list(w.dispatch_inputs.topics)

    @w.app.timer(interval=r.settings.metrics_lag_interval_s, name="metrics-consumer-lag")
    async def refresh_consumer_lag() -> None:
        if w.app.rebalancing:
            return
        try:
            lags = await read_lag(w.app.consumer, dispatch_topics)
        except Exception as exc:  # consumer not started, broker away: keep the last values
            log.debug("consumer lag not refreshed", error=type(exc).__name__)
            return
        metrics.set_consumer_lag(lags)
