"""The export held to the DfE's Missing-table validation rules (streams/ssda903/rules.py), and
the rules themselves shown to catch what they name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ssda903.export import Period, select_periods, ssda903_csv
from streams.ssda903.rules import check_missing_table

HEADER = "CHILD,DOB,MISSING,MIS_START,MIS_END\n"


def rules_broken(*rows: str) -> list[str]:
    return [v.rule for v in check_missing_table(HEADER + "".join(r + "\n" for r in rows))]


def test_a_clean_table_breaks_no_rule() -> None:
    assert (
        rules_broken(
            "C1,03/02/2011,M,01/06/2026,02/06/2026",
            "C1,03/02/2011,A,02/06/2026,",  # back in the morning, gone again that night
        )
        == []
    )


def test_each_rule_catches_what_it_names() -> None:
    assert rules_broken("C1,03/02/2011,M,,") == ["564"]
    assert rules_broken("C1,03/02/2011,,01/06/2026,") == ["565"]
    assert rules_broken("C1,03/02/2011,,01/06/2026,02/06/2026") == ["565", "566"]
    assert rules_broken("C1,03/02/2011,M,02/06/2026,01/06/2026") == ["567"]
    assert rules_broken("C1,03/02/2008,M,03/02/2026,") == ["578"]
    assert rules_broken("C1,03/02/2011,X,01/06/2026,") == ["1006"]
    assert rules_broken("C1,03/02/2011,M,31/06/2026,") == ["DATE"]
    assert rules_broken(
        "C1,03/02/2011,M,01/06/2026,",
        "C1,03/02/2011,M,03/06/2026,04/06/2026",
    ) == ["574"]
    assert rules_broken(
        "C1,03/02/2011,M,01/06/2026,05/06/2026",
        "C1,03/02/2011,A,03/06/2026,04/06/2026",
    ) == ["574"]


def test_a_violation_names_its_row_child_and_rule() -> None:
    (v,) = check_missing_table(HEADER + "C1,03/02/2011,M,02/06/2026,01/06/2026\n")
    assert str(v) == "row 1 (C1): rule 567: MIS_END is before MIS_START"


# Instants around the clock changes of 2026 and 2027 and around midnight, in UTC.
EDGES = [
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
    datetime(2026, 6, 30, 23, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    datetime(2027, 3, 28, 0, 30, tzinfo=UTC),
    datetime(2027, 3, 31, 23, 30, tzinfo=UTC),
]
instants = st.builds(
    lambda edge, minutes: edge + timedelta(minutes=minutes),
    st.sampled_from(EDGES),
    st.integers(min_value=-36 * 60, max_value=36 * 60),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Period], dict[str, date]]:
    periods: list[Period] = []
    dobs: dict[str, date] = {}
    for c in range(draw(st.integers(1, 4))):
        child = f"C{c}"
        dobs[child] = draw(st.dates(date(2007, 1, 1), date(2016, 1, 1)))
        starts = sorted(draw(st.lists(instants, min_size=1, max_size=4, unique=True)))
        for i, start in enumerate(starts):
            length = draw(st.one_of(st.none(), st.integers(1, 5 * 24 * 60)))
            end = None if length is None else start + timedelta(minutes=length)
            periods.append(Period(child, f"{child}E{i}", start, draw(st.sampled_from("MA")), end))
    return periods, dobs


@settings(max_examples=300, deadline=None)
@given(histories())
def test_any_export_breaks_no_rule(history: tuple[list[Period], dict[str, date]]) -> None:
    periods, dobs = history
    export = select_periods(periods, dobs, date(2026, 4, 1), date(2027, 3, 31))
    violations = check_missing_table(ssda903_csv(export, dobs))
    assert violations == [], [str(v) for v in violations]
