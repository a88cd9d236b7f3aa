"""Builds the Faust app from settings: resources in, wired agents out.

A factory rather than a module-level app, so tests and the benchmark can build isolated apps
(own topic prefix, memory store, manual clock) in one process.
"""

from __future__ import annotations

from typing import Any

import faust

from alerts.notifiers.select import build_notifiers
from schemas.codec import CODEC_NAME, register
from streams.dispatch.agent import wire_dispatch
from streams.engine.supervisor import wire_engine
from streams.kafka.admin import replication_config
from streams.kafka.clients import faust_broker, faust_credentials
from streams.kafka.topics import TABLES, TableSpec, TopicSpec, topic_specs
from streams.reload import wire_config_reload
from streams.web.api import wire_api
from streams.web.deliveries import wire_deliveries
from streams.web.episode_index import EpisodeIndex
from streams.web.episode_list import wire_episode_list
from streams.web.episode_status import wire_episode_status
from streams.web.metrics import wire_metrics
from streams.web.pages import wire_pages
from streams.web.responders import wire_responders
from streams.web.rhi_form import wire_rhi_form
from streams.web.server import harden_web_server
from streams.web.twilio_status import wire_twilio_status
from streams.worker.commit_offsets import commit_past_markers
from streams.worker.live_tables import LIVE_ATTR, live_tables
from streams.worker.read_committed import read_committed
from streams.worker.rewind import rewind_uncommitted
from streams.worker.wiring import Resources, Wiring

__all__ = ["Resources", "Wiring", "create_app"]

# Faust's RocksDB defaults (3 x 64 MB write buffers and a large block cache per partition of
# every table) dominate a worker's memory. Faust opens one database per partition per table
# (16 here), and these tables hold small values read by key: small buffers and caches, and the
# OS page cache does the rest.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 2 * 1024 * 1024,
}


def _topic(app: Any, spec: TopicSpec, serializer: str) -> Any:
    return app.topic(
        spec.name,
        partitions=spec.partitions,
        config=spec.config,
        key_serializer="raw",
        value_serializer=serializer,
    )


def create_app(resources: Resources) -> Wiring:
    register()
    read_committed()
    rewind_uncommitted()
    commit_past_markers()
    live_tables()
    settings = resources.settings
    if not resources.notifiers:
        resources.notifiers = build_notifiers(settings)
    specs = topic_specs(settings)
    app = faust.App(
        settings.app_id,
        broker=faust_broker(settings),
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        web_host=settings.web_host,
        # Faust binds 0.0.0.0 unless told: bind exactly the configured host.
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        key_serializer="raw",
        value_serializer="raw",
    )

    def table(spec: TableSpec, **extra: Any) -> Any:
        """bytes in, bytes out: values are decoded with the spec's codec on read, so Faust
        never needs to know the models; partitioned like the child-keyed topics."""
        factory = app.GlobalTable if spec.global_ else app.Table
        return factory(
            spec.name,
            default=None,
            partitions=settings.topic_partitions,
            key_type=bytes,
            value_type=bytes,
            options=ROCKSDB_OPTIONS if settings.store.startswith("rocksdb") else None,
            extra_topic_configs=replication_config(settings),
            **extra,
        )

    # Read on every worker, from every partition of their changelogs, their "own" ones
    # included: the engine's tables (it is not a Faust agent and writes their changelogs
    # itself) and dispatch's per-episode ones (written on the worker owning the child; an SMS
    # reply, an API acknowledgement or an episode view can reach any worker). Faust hands a
    # global table's partitions to every worker as active ones and reads active partitions
    # only while recovering, so without this a worker would not see what another wrote after
    # it started (test_engine_process: any worker serves any episode). Their records are
    # applied in bulk while recovering, then each as it comes (streams/worker/live_tables.py).
    # Dispatch reads its own writes back too, so it read-modify-writes through OwnWrites
    # (streams/worker/own_writes.py).
    read_everywhere = {"synchronize_all_active_partitions": True}

    def live(spec: TableSpec, **extra: Any) -> Any:
        made = table(spec, **read_everywhere, **extra)
        setattr(made, LIVE_ATTR, True)
        return made

    views = EpisodeIndex()  # the duty desk's list, decoded as the table applies each record

    wiring = Wiring(
        app=app,
        events=_topic(app, specs["events"], CODEC_NAME),
        profiles=_topic(app, specs["profiles"], CODEC_NAME),
        alerts=_topic(app, specs["alerts"], CODEC_NAME),
        episode_events=_topic(app, specs["episode_events"], CODEC_NAME),
        dead_letters=_topic(app, specs["dead_letters"], CODEC_NAME),
        due=_topic(app, specs["due"], CODEC_NAME),
        # Alerts, receipts and retry events: one channel, so one agent owns the delivery log.
        dispatch_inputs=app.topic(
            specs["alerts"].name,
            specs["receipts"].name,
            specs["dispatch_retries"].name,
            key_serializer="raw",
            value_serializer="raw",
        ),
        receipts=_topic(app, specs["receipts"], CODEC_NAME),
        retries=_topic(app, specs["dispatch_retries"], CODEC_NAME),
        # What each table holds: streams/kafka/topics.py, TABLES.
        episode_codes=live(TABLES["episode_codes"]),
        episode_views=live(TABLES["episode_views"], on_changelog_event=views.on_changelog_event),
        notified=live(TABLES["notified"]),
        episode_notifications=live(TABLES["episode_notifications"]),
        deliveries=table(TABLES["deliveries"]),
    )
    wiring.engine = wire_engine(wiring, resources)
    dispatcher = wire_dispatch(wiring, resources)
    wire_twilio_status(wiring, resources)
    wire_pages(wiring, resources)
    api = wire_api(wiring, resources, views)
    wire_responders(wiring, resources, api)
    wire_episode_list(wiring, resources, api, views)
    wire_episode_status(wiring, resources, api, views)
    wire_rhi_form(wiring, resources, api)
    wire_deliveries(wiring, resources, api)
    wire_metrics(wiring, resources)
    wire_config_reload(wiring, resources, api, dispatcher)
    harden_web_server(app, settings)
    return wiring
