"""Failpoints (streams/runtime/failpoints.py): what arms them and what a typo does."""

from __future__ import annotations

import pytest

from streams.runtime import failpoints


def test_specs_name_the_point_the_hit_and_the_action() -> None:
    assert failpoints.parse("engine.after_commit_before_store") == {
        "engine.after_commit_before_store": (1, "exit")
    }
    assert failpoints.parse(
        "dispatch.after_send_before_record:3, engine.after_produce_before_commit:2:stop"
    ) == {
        "dispatch.after_send_before_record": (3, "exit"),
        "engine.after_produce_before_commit": (2, "stop"),
    }
    assert failpoints.parse("") == {}


@pytest.mark.parametrize(
    "bad",
    [
        "engine.after_commit",
        "engine.after_commit_before_store:0",
        "engine.after_commit_before_store:1:explode",
    ],
)
def test_a_typo_is_an_error_not_a_test_without_its_crash(bad: str) -> None:
    with pytest.raises(ValueError):
        failpoints.parse(bad)


def test_the_action_runs_at_the_counted_hit_only() -> None:
    hits: list[str] = []
    with failpoints.armed("engine.after_store_before_poll", hits.append, count=2):
        for _ in range(4):
            failpoints.failpoint("engine.after_store_before_poll")
            failpoints.failpoint("engine.after_commit_before_store")  # not armed
    assert hits == ["engine.after_store_before_poll"]
    failpoints.failpoint("engine.after_store_before_poll")  # disarmed again: nothing
    assert hits == ["engine.after_store_before_poll"]
