"""Rewind a stream partition that has no committed offset when Faust seeks to committed offsets.

Faust drops records it fetched while its flow was stopped (a rebalance under way, recovery of a
table) and relies on a seek back to the committed offsets to fetch them again ("getmany called
while flow not active", and again when recovery resumes the streams). For a partition that has
no committed offset yet, that seek does nothing (aiokafka's ``seek_to_committed`` skips a
missing offset), so the dropped records are never delivered and the first later commit skips
them for good. A worker that restarted before its first offset commit therefore lost the
alerts it had fetched: tests/integration/test_dispatch.py's SIGKILL test lost every alert of
the restart in about one run in three on this machine. Here such a partition goes back to its
beginning, which is what ``consumer_auto_offset_reset="earliest"`` means for a group with no
offset; the notification log stops a replayed alert reaching anyone twice (docs/dispatch.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from telemetry.logging import get_logger

log = get_logger("missing_alerts.worker.rewind")

_MARK = "_missing_alerts_rewind"


def partitions_to_rewind(
    committed: Mapping[Any, int | None], changelog_topics: Collection[str]
) -> set[Any]:
    """Stream partitions (not table changelogs, whose offsets Faust's recovery manages) with
    no committed offset. aiokafka's seek treats 0 as "no offset" too, and rewinding a
    partition committed at 0 is the same as not rewinding it."""
    return {
        tp for tp, offset in committed.items() if not offset and tp.topic not in changelog_topics
    }


def _topics(tps: Iterable[Any]) -> list[str]:
    return sorted({tp.topic for tp in tps})


def rewind_uncommitted() -> None:
    """Idempotent: patch the Faust aiokafka consumer's ``seek_to_committed`` once per process."""
    consumer = faust_aiokafka.Consumer
    original = consumer.seek_to_committed
    if getattr(original, _MARK, False):
        return

    async def seek_to_committed(self: Any) -> Mapping[Any, int]:
        committed = await original(self)
        rewind = partitions_to_rewind(committed, self.app.tables.changelog_topics)
        if rewind:
            await self._thread.seek_to_beginning(*rewind)
            log.info(
                "partitions with no committed offset rewound",
                partitions=len(rewind),
                topics=_topics(rewind),
            )
        return committed

    setattr(seek_to_committed, _MARK, True)
    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
