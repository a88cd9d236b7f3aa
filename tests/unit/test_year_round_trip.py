"""A reporting year through the episode engine and the export, without a broker: every
period once, with the right London dates and category (the same year goes through the real
pipeline in tests/integration/test_year_round_trip.py)."""

from __future__ import annotations

from collections import Counter

from streams.episodes.machine import apply
from streams.episodes.state import ChildState
from streams.ssda903.export import fold_records, select_periods, ssda903_csv
from streams.ssda903.rules import check_missing_table
from tests.support.year import YEAR_END, YEAR_START, expected_rows, generate, in_arrival_order
from tests.unit.episode_helpers import shipped_policy


def test_a_year_with_late_and_out_of_order_deliveries_exports_every_period_right() -> None:
    year = generate()
    assert len(year.periods) >= 1000 and year.late_or_reordered >= 300
    policy = shipped_policy()
    states: dict[str, ChildState | None] = {}
    records = []
    for arrives, event in in_arrival_order(year):
        state, effects = apply(states.get(event.child_ref), event, arrives, policy)
        states[event.child_ref] = state
        records += [r.model_dump(mode="json") for r in effects.records]
    result = select_periods(fold_records(records).values(), year.dobs, YEAR_START, YEAR_END)
    table = ssda903_csv(result, year.dobs)
    got, want = table.splitlines()[1:], expected_rows(year)
    wrong = (Counter(got) - Counter(want)) + (Counter(want) - Counter(got))
    assert not wrong, f"{len(wrong)} periods wrong, e.g. {sorted(wrong)[:6]}"
    assert check_missing_table(table) == []
