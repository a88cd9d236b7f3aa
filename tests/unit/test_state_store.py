"""One contract for both state store backends (streams/engine/store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.engine.store import MemoryStore, RocksDBStore, StateStore


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    backend: StateStore = MemoryStore() if request.param == "memory" else RocksDBStore(tmp_path)
    try:
        yield backend
    finally:
        backend.close()


def test_open_is_idempotent(store: StateStore) -> None:
    store.open(0)
    store.write(0, {b"A": b"1"}, 5)
    store.open(0)
    assert store.get(0, b"A") == b"1"
    assert store.changelog_offset(0) == 5


def test_missing_key_reads_none(store: StateStore) -> None:
    store.open(0)
    assert store.get(0, b"nobody") is None


def test_no_offset_before_any_write(store: StateStore) -> None:
    store.open(3)
    assert store.changelog_offset(3) is None
    assert list(store.items(3)) == []


def test_write_applies_puts_and_deletes_with_the_offset(store: StateStore) -> None:
    store.open(0)
    store.write(0, {b"A": b"a1", b"B": b"b1"}, 10)
    store.write(0, {b"A": None, b"B": b"b2", b"C": b"c1"}, 11)
    assert store.get(0, b"A") is None
    assert store.get(0, b"B") == b"b2"
    assert store.get(0, b"C") == b"c1"
    assert store.changelog_offset(0) == 11


def test_deleting_an_absent_key_is_harmless(store: StateStore) -> None:
    store.open(0)
    store.write(0, {b"ghost": None}, 0)
    assert store.get(0, b"ghost") is None
    assert store.changelog_offset(0) == 0
    assert list(store.items(0)) == []


def test_items_are_the_partitions_entries_without_the_offset_key(store: StateStore) -> None:
    store.open(0)
    store.open(1)
    store.write(0, {b"A": b"a", b"B": b"b"}, 7)
    store.write(1, {b"Z": b"z"}, 3)
    assert sorted(store.items(0)) == [(b"A", b"a"), (b"B", b"b")]
    assert sorted(store.items(1)) == [(b"Z", b"z")]
    for key, value in store.items(0):
        assert isinstance(key, bytes) and isinstance(value, bytes)


def test_partitions_are_independent(store: StateStore) -> None:
    store.open(0)
    store.open(1)
    store.write(0, {b"A": b"p0"}, 100)
    store.write(1, {b"A": b"p1"}, 2)
    store.write(1, {b"A": None}, 3)
    assert store.get(0, b"A") == b"p0"
    assert store.get(1, b"A") is None
    assert store.changelog_offset(0) == 100
    assert store.changelog_offset(1) == 3


def test_reset_forgets_contents_and_offset(store: StateStore) -> None:
    store.open(0)
    store.open(1)
    store.write(0, {b"A": b"a"}, 4)
    store.write(1, {b"B": b"b"}, 9)
    store.reset(0)
    assert store.get(0, b"A") is None
    assert store.changelog_offset(0) is None
    assert list(store.items(0)) == []
    assert store.get(1, b"B") == b"b" and store.changelog_offset(1) == 9
    store.write(0, {b"C": b"c"}, 1)  # the partition is usable again
    assert sorted(store.items(0)) == [(b"C", b"c")]


def test_rocksdb_keeps_data_and_offsets_across_reopen(tmp_path: Path) -> None:
    first = RocksDBStore(tmp_path)
    first.open(0)
    first.open(2)
    first.write(0, {b"A": b"a", b"B": b"b"}, 41)
    first.write(0, {b"B": None}, 42)
    first.write(2, {b"Z": b"z"}, 7)
    first.close()

    second = RocksDBStore(tmp_path)
    try:
        second.open(0)
        second.open(2)
        assert sorted(second.items(0)) == [(b"A", b"a")]
        assert second.changelog_offset(0) == 42
        assert second.get(2, b"Z") == b"z"
        assert second.changelog_offset(2) == 7
        second.open(5)
        assert second.changelog_offset(5) is None
    finally:
        second.close()
