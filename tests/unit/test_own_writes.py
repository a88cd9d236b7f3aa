"""streams/worker/own_writes.py: dispatch's read-modify-write reads what it wrote last, not
the table's local copy, which may still hold an older value read back from the changelog."""

from __future__ import annotations

from streams.worker.own_writes import OwnWrites


class _Event:
    """Stands in for the Faust event whose partition a write lands on."""


def test_a_stale_copy_read_back_from_the_changelog_does_not_hide_the_latest_write() -> None:
    table: dict[bytes, bytes] = {}
    own = OwnWrites(table)
    own.set(_Event(), b"K7Q2MD", b"v1")
    own.set(_Event(), b"K7Q2MD", b"v2")
    table[b"K7Q2MD"] = b"v1"  # the changelog's copy of the first write arrives late
    assert own.get(b"K7Q2MD") == b"v2"
    own.delete(_Event(), b"K7Q2MD")
    table[b"K7Q2MD"] = b"v2"  # and the second one, after the delete
    assert own.get(b"K7Q2MD") is None


def test_keys_it_never_wrote_come_from_the_table_and_old_writes_age_out() -> None:
    table = {b"OTHER1": b"from another worker"}
    own = OwnWrites(table, limit=2)
    assert own.get(b"OTHER1") == b"from another worker"
    assert own.get(b"NONE01") is None
    for i in range(3):
        own.set(_Event(), f"CODE0{i}".encode(), b"x%d" % i)
    table[b"CODE00"] = b"caught up"  # long read back: the table's copy is the truth again
    assert own.get(b"CODE00") == b"caught up"
    assert own.get(b"CODE02") == b"x2"
    assert table[b"CODE02"] == b"x2"  # every write goes to the table
