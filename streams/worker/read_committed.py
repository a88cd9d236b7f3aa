"""Make the Faust worker's consumer read ``read_committed``.

The engine commits its alerts, audit records and episode-code entries in Kafka transactions
(docs/engine-runtime.md). Dispatch must act only on committed alerts (an aborted one is an
alert the engine did not decide), and the episode-code table must not learn codes of aborted
episodes. Faust chooses ``read_committed`` only when its own exactly-once mode is on, and that
mode is not usable in faust-streaming 0.15 (it crashes at start-up, faust-streaming#440, and
doubles records across restarts and rebalances, #517, #323). So the worker keeps Faust at least
once, with the notification log for idempotence, and sets the isolation level of the consumer
Faust creates, before it starts (aiokafka reads it when it builds its fetcher). One consumer
serves the agents and the table changelogs alike, so both are covered.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_MARK = "_missing_alerts_read_committed"


def read_committed() -> None:
    """Idempotent: patch Faust's consumer factory once per process."""
    thread = faust_aiokafka.AIOKafkaConsumerThread
    original = thread._create_worker_consumer
    if getattr(original, _MARK, False):
        return

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._isolation_level = "read_committed"
        return consumer

    setattr(create, _MARK, True)
    thread._create_worker_consumer = create  # type: ignore[method-assign]
