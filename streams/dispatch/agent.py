"""The dispatch agent: a thin Faust shell around streams/dispatch/pipeline.py.

It binds the pipeline's ports to the worker's tables and topics and runs each input record as
its own task, so a slow or hung provider holds only its own message. A record's offset is
acknowledged to Faust only when its task finished, i.e. when its delivery records are written
and its follow-ups (fallbacks, dead letters) are on Kafka; Faust commits the highest offset
below which everything is acknowledged (and flushes the table changelogs first), so a crash
replays exactly the records whose outcome was not yet durable, and the notification log stops
a replayed alert from reaching anyone twice.

Timers (they run on every worker over its own partitions and only emit events; the agent
applies them, so tables are written inside stream processing only):
- the retry timer sends RetryDue when a parked message's backoff expires;
- the retention sweep sends RetentionDue for delivery records past their retention.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from alerts import notification_views
from alerts import notified as notified_codec
from alerts.delivery_log import Delivery, decode, decode_header, encode
from alerts.fanout import Links
from alerts.retry import RetryPolicy
from schemas.alerts import Alert, RetryDue
from schemas.records import DeadLetter
from streams.dispatch.pipeline import Dispatcher
from streams.dispatch.ports import DispatchConfig, Item, Source
from streams.dispatch.retention import retention_requests
from streams.dispatch.runner import ItemRunner
from streams.kafka.sending import send_durably
from streams.runtime.due_index import DueEntry
from streams.runtime.failpoints import failpoint
from streams.runtime.timers import TimerState
from streams.worker.faust_context import event_context
from streams.worker.own_writes import OwnWrites
from streams.worker.timers import settled, wire_timer
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import episode_code_of, get_logger

log = get_logger("missing_alerts.dispatch.agent")


class TableDeliveryLog:
    """The ``deliveries`` table seen from one input record: writes land on its partition, and
    the retry index and the duty desk's ``episode-notifications`` view follow every write."""

    def __init__(self, w: Wiring, views: OwnWrites, event: Any, timer: TimerState) -> None:
        self.table, self.views, self.event = w.deliveries, views, event
        self.timer, self.producer = timer, w.app.producer

    def get(self, notification_id: str) -> Delivery | None:
        raw = self.table.get(notification_id.encode())
        return decode(raw) if raw else None

    def put(self, delivery: Delivery) -> None:
        nid = delivery.notification.notification_id.encode()
        code = delivery.notification.episode_code.encode()
        seen = notification_views.view_of(delivery)
        view = notification_views.with_view(self.views.get(code), seen)
        with event_context(self.event):
            self.table[nid] = encode(delivery)
        if view is not None:
            self.views.set(self.event, code, view)
        retry_at = delivery.next_attempt_at if delivery.status == "retrying" else None
        self.timer.index.set(nid, retry_at, delivery.notification.child_ref)

    def delete(self, notification_id: str) -> None:
        nid = notification_id.encode()
        code = (episode_code_of(notification_id) or "").encode()
        view = notification_views.without(self.views.get(code), notification_id)
        with event_context(self.event):
            self.table.pop(nid, None)
        if view == b"":
            self.views.delete(self.event, code)
        elif view is not None:
            self.views.set(self.event, code, view)
        self.timer.index.set(nid, None, None)

    async def flush(self) -> None:
        await self.producer.flush()


class TableNotifiedLog:
    """The ``episode-notified`` global table seen from one input record."""

    def __init__(self, table: OwnWrites, event: Any) -> None:
        self.table, self.event = table, event

    def _get(self, code: str) -> notified_codec.Notified:
        return notified_codec.decode(self.table.get(code.encode()))

    def _set(self, code: str, entry: notified_codec.Notified | None) -> None:
        if entry is not None:
            self.table.set(self.event, code.encode(), notified_codec.encode(entry))

    def add(self, episode_code: str, person: str) -> None:
        self._set(episode_code, self._get(episode_code).with_person(person))

    def close(self, episode_code: str, at: datetime) -> None:
        self._set(episode_code, self._get(episode_code).with_close(at))

    def closed_at(self, episode_code: str) -> datetime | None:
        return self._get(episode_code).closed_at

    def forget(self, episode_code: str) -> None:
        if self.table.get(episode_code.encode()) is not None:
            self.table.delete(self.event, episode_code.encode())


def dispatch_config(r: Resources) -> DispatchConfig:
    s = r.settings
    return DispatchConfig(
        links=Links(s.public_base_url, s.link_key, timedelta(seconds=s.link_ttl_s)),
        retry=RetryPolicy(
            initial=timedelta(seconds=s.dispatch_retry_initial_s),
            cap=timedelta(seconds=s.dispatch_retry_cap_s),
            deadline=timedelta(seconds=s.dispatch_retry_deadline_s),
        ),
        retention=timedelta(days=s.delivery_retention_days),
        concurrency=s.dispatch_concurrency,
        attempt_timeout=timedelta(seconds=s.sms_timeout_s + 5),
    )


def wire_dispatch(w: Wiring, r: Resources) -> Dispatcher:
    settings, clock, metrics = r.settings, r.clock, r.metrics
    timer = TimerState("dispatch-retry", metrics=metrics)

    async def emit(records: Sequence[BaseModel]) -> None:
        topics = {Alert: w.alerts, DeadLetter: w.dead_letters}
        await send_durably(
            [(topics[type(rec)], rec.child_ref.encode(), rec) for rec in records]  # type: ignore[attr-defined]
        )

    dispatcher = Dispatcher(
        policy=r.policy,
        config=dispatch_config(r),
        notifiers=r.notifiers,
        emit=emit,
        clock=clock,
        metrics=metrics,
    )
    runner = ItemRunner(limit=settings.dispatch_max_outstanding)
    # Read-modify-written here, read on every worker (streams/worker/own_writes.py).
    notified, views = OwnWrites(w.notified), OwnWrites(w.episode_notifications)

    def delivery_header(key: bytes, value: bytes) -> tuple[bytes, datetime | None, str | None]:
        header = decode_header(value)
        return header.child_ref.encode(), header.retry_at, header.child_ref

    async def emit_retry(entry: DueEntry, now: datetime) -> None:
        await w.retries.send(
            key=entry.tag.encode(),
            value=RetryDue(
                occurred_at=now,
                child_ref=entry.tag,
                notification_id=entry.key.decode(),
                due_at=entry.due_at,
            ),
        )

    wire_timer(
        w.app,
        w.deliveries,
        settings,
        clock,
        timer,
        source_topic=settings.topic("alerts"),
        header=delivery_header,
        emit=emit_retry,
    )
    _wire_retention_sweep(w, r, dispatch_config(r).retention)

    @w.app.on_partitions_revoked.connect
    async def _drain_before_revoke(*_args: Any, **_kwargs: Any) -> None:
        # Records of a partition that is moving finish here, before its new owner replays them.
        await runner.drain(within_s=settings.sms_timeout_s + 10)

    @w.app.agent(w.dispatch_inputs, name="dispatch")
    async def dispatch(stream: Any) -> None:
        try:
            async for events in stream.noack_take(
                settings.dispatch_batch_max, settings.dispatch_batch_within_s
            ):
                for event in events:
                    await runner.submit(_one(event, stream))
        finally:
            await runner.drain(within_s=settings.sms_timeout_s + 10)

    async def _one(event: Any, stream: Any) -> None:
        msg = event.message
        item = Item(
            source=Source(msg.topic, msg.partition, msg.offset, event.key, event.value),
            log=TableDeliveryLog(w, views, event, timer),
            notified=TableNotifiedLog(notified, event),
        )
        await dispatcher.handle(item)
        failpoint("dispatch.after_record_before_ack")
        await stream.ack(event)

    return dispatcher


def _wire_retention_sweep(w: Wiring, r: Resources, retention: timedelta) -> None:
    """Every RETENTION_SWEEP_INTERVAL_S, look over this worker's delivery records (header
    lines only) and ask the agent to delete those past their retention."""
    settings, clock, metrics = r.settings, r.clock, r.metrics
    alerts_topic = settings.topic("alerts")

    @w.app.timer(interval=settings.retention_sweep_interval_s, name="retention-sweep")
    async def sweep() -> None:
        if not settled(w.app):
            return
        actives = {
            tp.partition for tp in w.app.assignor.assigned_actives() if tp.topic == alerts_topic
        }
        due = retention_requests(
            list(w.deliveries.items()),
            list(w.notified.items()),
            w.episode_codes.get,
            owned=actives,
            partitions=settings.topic_partitions,
            now=clock.now(),
            retention=retention,
            limit=settings.timer_batch,
        )
        for request in due:
            with contextlib.suppress(Exception):  # a lost request is sent again next sweep
                await w.retries.send(key=request.child_ref.encode(), value=request)
            await asyncio.sleep(0)
        metrics.timer_tick("retention", len(due), len(due))
        if due:
            log.info("retention sweep", expired=len(due))
