"""`missing-alerts import ssda903` (issue 13, part 4): a council's past Missing table comes in
as closed history, without any alert, idempotently, every bad row refused with its row number,
column and reason; what comes in goes back out of the export unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.alerts import AlertKind
from schemas.events import HistoricEpisode
from streams.ssda903.export import fold_records, select_periods, ssda903_csv
from streams.ssda903.history import parse_missing_table
from tests.unit.episode_helpers import CHILD, Driver, absence, profile

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HEADER = "CHILD,DOB,MISSING,MIS_START,MIS_END\n"
TABLE = (
    HEADER
    + f"{CHILD},01/01/2012,M,03/04/2026,05/04/2026\n"
    + f"{CHILD},01/01/2012,A,05/04/2026,05/04/2026\n"  # starts the day the previous ended
    + f"{CHILD},01/01/2012,M,27/10/2026,28/10/2026\n"  # across the clocks going back
    + "D200,14/02/2010,A,29/03/2026,30/03/2026\n"  # across the clocks going forward
)


def parse(text: str | bytes) -> tuple[list[HistoricEpisode], list[str]]:
    raw = text.encode() if isinstance(text, str) else text
    parsed = parse_missing_table(
        raw, authority="LA-EXAMPLE", default_authority="LA-EXAMPLE", now=NOW
    )
    return parsed.episodes, [str(r) for r in parsed.refused]


def imported(episodes: list[HistoricEpisode]) -> dict[str, Driver]:
    drivers: dict[str, Driver] = {}
    for event in episodes:
        driver = drivers.setdefault(event.child_ref, Driver())
        driver.send(event, NOW)
    return drivers


def export_of(drivers: dict[str, Driver]) -> str:
    records = [r.model_dump(mode="json") for d in drivers.values() for r in d.records]
    dobs = {"C123": date(2012, 1, 1), "D200": date(2010, 2, 14)}
    result = select_periods(
        fold_records(records).values(), dobs, date(2026, 4, 1), date(2027, 3, 31)
    )
    assert result.warnings == []
    return ssda903_csv(result, dobs)


def test_what_is_imported_is_exported_unchanged_and_nothing_is_sent() -> None:
    episodes, refused = parse(TABLE)
    assert refused == [] and len(episodes) == 4
    drivers = imported(episodes)
    assert all(d.alerts == [] for d in drivers.values())
    in_year = [line for line in TABLE.splitlines() if "/03/2026" not in line]
    assert export_of(drivers).splitlines() == in_year
    assert {r.detail.as_dict()["reason"] for d in drivers.values() for r in d.records} == {
        "imported"
    }


def test_importing_the_same_file_again_records_nothing_new() -> None:
    episodes, _ = parse(TABLE)
    drivers = imported(episodes)
    first = export_of(drivers)
    again, _ = parse(TABLE)
    for event in again:
        effects = drivers[event.child_ref].send(event, NOW + timedelta(days=1))
        assert [r.detail.as_dict().get("reason") for r in effects.records] == ["duplicate_event"]
        assert effects.alerts == []
    assert export_of(drivers) == first


def test_a_reimport_after_the_dedupe_window_is_refused_by_the_episode_code() -> None:
    (recent,), _ = parse(HEADER + f"{CHILD},01/01/2012,M,20/11/2026,21/11/2026\n")
    driver = Driver()
    driver.send(recent, NOW)
    for i in range(70):  # pushes the event id out of the 64-id window
        driver.send(profile(NOW - timedelta(days=1, minutes=i)), NOW)
    effects = driver.send(recent, NOW)
    assert [(r.action, r.detail.as_dict()["reason"]) for r in effects.records] == [
        ("ignored", "already_recorded")
    ]


def test_an_old_period_imported_again_later_is_still_exported_once() -> None:
    """Periods older than the repeat rule's look-back leave the child's state at once; their
    records are what the export reads, keyed by the episode code, which a re-import repeats."""
    episodes, _ = parse(TABLE)
    drivers = imported(episodes)
    first = export_of(drivers)
    for driver in drivers.values():
        for i in range(70):
            driver.send(profile(NOW - timedelta(days=1, minutes=i)), NOW)
    for event in episodes:
        assert drivers[event.child_ref].send(event, NOW).alerts == []
    assert export_of(drivers) == first


def test_imported_episodes_count_for_the_repeat_rule_but_send_nothing() -> None:
    table = HEADER + "".join(
        f"{CHILD},01/01/2012,M,{d:02d}/11/2026,{d:02d}/11/2026\n" for d in (10, 20)
    )
    episodes, refused = parse(table)
    assert refused == []
    driver = Driver()
    driver.send(profile(NOW - timedelta(days=60)), NOW - timedelta(days=60))
    for event in episodes:
        assert driver.send(event, NOW).alerts == []
    driver.send(absence(NOW), NOW)
    assert AlertKind.STRATEGY_MEETING in [a.kind for a in driver.alerts]
    meeting = next(a for a in driver.alerts if a.kind is AlertKind.STRATEGY_MEETING)
    assert meeting.repeat is not None and meeting.repeat.episodes == 3


def test_a_period_overlapping_a_known_episode_is_refused_by_the_engine() -> None:
    driver = Driver()
    driver.send(absence(datetime(2026, 11, 20, 9, 0, tzinfo=UTC)), NOW)
    (event,), _ = parse(HEADER + f"{CHILD},01/01/2012,M,19/11/2026,21/11/2026\n")
    effects = driver.send(event, NOW)
    assert [(r.action, r.detail.as_dict()["reason"]) for r in effects.records] == [
        ("ignored", "overlaps_known_episode")
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("C1,01/01/2012,X,03/04/2026,05/04/2026", "row 2: MISSING: must be M or A"),
        ("C1,01/01/2012,M,31/02/2026,05/04/2026", "row 2: MIS_START: not a dd/mm/yyyy date"),
        ("C1,01/01/2012,M,2026-04-03,05/04/2026", "row 2: MIS_START: not a dd/mm/yyyy date"),
        ("C1,01/01/2012,M,03/04/2026,", "row 2: MIS_END: required: open periods"),
        ("C1,01/01/2012,M,05/04/2026,03/04/2026", "row 2: MIS_END: before MIS_START"),
        ("C1,01/01/2012,M,03/04/2026,05/04/2027", "row 2: MIS_END: in the future"),
        ("C1,01/01/2012,M,03/04/2011,05/04/2011", "row 2: MIS_START: before DOB"),
        ("C1,01/01/2008,M,01/01/2026,05/04/2026", "row 2: MIS_START: on or after the 18th"),
        ("C1,01/01/2012,M,01/01/1066,05/04/2026", "row 2: MIS_START: before 1990"),
        ("C1@LA-OTHER,01/01/2012,M,03/04/2026,05/04/2026", "row 2: CHILD: empty, too long"),
        (",01/01/2012,M,03/04/2026,05/04/2026", "row 2: CHILD: empty"),
        ("C1,01/01/2012,M,03/04/2026", "row 2: row: 4 columns, expected 5"),
        ("C1,01/01/2012,M,03/04/2026,05/04/2026,extra", "row 2: row: 6 columns, expected 5"),
    ],
)
def test_a_bad_row_is_refused_with_its_number_column_and_reason(row: str, expected: str) -> None:
    episodes, refused = parse(HEADER + row + "\n" + "C9,01/01/2012,A,01/05/2026,02/05/2026\n")
    assert len(refused) == 1 and refused[0].startswith(expected), refused
    assert [e.child_ref for e in episodes] == ["C9"]  # the good row still comes in
    assert [e.source_row for e in episodes] == [3]


def test_overlapping_and_repeated_rows_in_one_file_are_refused() -> None:
    table = (
        HEADER
        + "C1,01/01/2012,M,03/04/2026,10/04/2026\n"
        + "C1,01/01/2012,M,05/04/2026,06/04/2026\n"
        + "C1,01/01/2012,M,03/04/2026,10/04/2026\n"
    )
    _, refused = parse(table)
    assert refused == ["row 3: MIS_START: overlaps row 2", "row 4: row: repeats row 2"]


def test_hostile_files_get_one_clear_refusal() -> None:
    assert parse(b"CHILD,DOB\xff\n")[1] == ["row 0: file: not UTF-8 (byte 9)"]
    assert parse("NAME,DOB,MISSING,MIS_START,MIS_END\n")[1][0].startswith("row 1: header:")
    assert parse("")[1][0].startswith("row 1: header:")
    huge = HEADER + "C1," + "9" * 200_000 + ",M,03/04/2026,05/04/2026\n"
    episodes, refused = parse(huge)
    assert episodes == [] and refused and ("not CSV" in refused[0] or "DOB" in refused[0])
    nul = HEADER + "C1\x00,01/01/2012,M,03/04/2026,05/04/2026\n"
    episodes, refused = parse(nul)
    assert len(episodes) + len(refused) == 1  # handled, one way or the other, never raised


def test_a_bom_and_lower_case_header_are_accepted() -> None:
    episodes, refused = parse("\ufeff" + HEADER.lower() + "C1,01/01/2012,m,03/04/2026,05/04/2026\n")
    assert refused == [] and len(episodes) == 1
