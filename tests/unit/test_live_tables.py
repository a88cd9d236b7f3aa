"""streams/worker/live_tables.py: tables read on every worker are rebuilt in bulk and, once
Faust ends its recovery, apply each record as it comes (Faust's own classes, no broker)."""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery

from streams.worker.live_tables import LIVE_ATTR, go_live, live_tables


class _Table:
    def __init__(self, live: bool) -> None:
        self.recovery_buffer_size = 1000
        self.applied: list[Any] = []
        if live:
            setattr(self, LIVE_ATTR, True)

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        self.applied.extend(batch)


class _Recovery:
    def __init__(self, tables: dict[str, _Table]) -> None:
        self.tp_to_table = tables
        self.buffer_sizes = dict.fromkeys(tables, 1000)
        self.buffers: dict[_Table, list[Any]] = {t: [f"{tp}-late"] for tp, t in tables.items()}


def test_live_tables_drop_to_one_record_buffers_and_nothing_waits() -> None:
    live, other = _Table(live=True), _Table(live=False)
    recovery = _Recovery({"codes-0": live, "deliveries-0": other})
    go_live(recovery)
    assert live.recovery_buffer_size == 1 and recovery.buffer_sizes["codes-0"] == 1
    assert live.applied == ["codes-0-late"] and recovery.buffers[live] == []
    # A table that is not read everywhere keeps Faust's bulk buffers.
    assert other.recovery_buffer_size == 1000 and recovery.buffer_sizes["deliveries-0"] == 1000
    assert other.applied == [] and recovery.buffers[other] == ["deliveries-0-late"]


def test_the_patch_is_on_faust_recovery_end_and_applied_once() -> None:
    live_tables()
    patched = Recovery._set_recovery_ended
    live_tables()
    assert Recovery._set_recovery_ended is patched
    assert getattr(patched, "_missing_alerts_live_tables", False)
