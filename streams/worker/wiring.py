"""The two things every wiring module takes: ``Resources`` (what the worker runs with) and
``Wiring`` (the Faust app, its topics and tables). In a module of their own so that the wiring
modules (engine supervisor, dispatch, web) never import the app factory that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import faust
from faust.types import TopicT
from faust.types.tables import GlobalTableT, TableT

from alerts.notifiers.base import Notifier
from config.policy import Policy
from config.settings import Settings
from schemas.alerts import Channel
from streams.runtime.clock import Clock, SystemClock
from telemetry.metrics import Metrics


@dataclass
class Resources:
    settings: Settings
    policy: Policy
    # The one clock of the worker: every time read of the API, dispatch and the timers.
    clock: Clock = field(default_factory=SystemClock)
    notifiers: dict[Channel, Notifier] = field(default_factory=dict)
    # Its own registry per app (several apps can live in one process); on/off from settings.
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(enabled=self.settings.metrics_enabled)


class EngineHandle(Protocol):
    """What the web side needs of the engine process (streams/engine/supervisor.py)."""

    @property
    def local_url(self) -> str: ...

    @property
    def failed_with(self) -> int | None: ...


@dataclass
class Wiring:
    app: faust.App
    events: TopicT
    profiles: TopicT
    alerts: TopicT
    episode_events: TopicT
    dead_letters: TopicT
    due: TopicT
    dispatch_inputs: TopicT  # alerts, receipts and retries as one channel
    receipts: TopicT
    retries: TopicT
    deliveries: TableT[bytes, bytes]  # notification id -> delivery record (alerts/delivery_log.py)
    episode_codes: GlobalTableT  # global: episode code -> child reference
    episode_views: GlobalTableT  # global: episode code -> duty-desk summary (episodes/views.py)
    notified: GlobalTableT  # global: episode code -> who was messaged (alerts/notified.py)
    # global: episode code -> who was told and each message's status (notification_views.py)
    episode_notifications: GlobalTableT
    engine: EngineHandle | None = None  # set by streams.engine.supervisor.wire_engine

    def engine_handle(self) -> EngineHandle:
        """For wiring that runs after the engine's (streams/app.py wires it first)."""
        if self.engine is None:
            raise RuntimeError("the engine must be wired before the web endpoints")
        return self.engine
