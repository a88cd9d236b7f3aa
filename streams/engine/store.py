"""The engine's local state: one key-value store per partition, plus the changelog offset it holds.

The engine (streams/engine/loop.py) writes a child's state here only after the same bytes are
acknowledged on the changelog topic, and records the changelog offset in the same atomic write.
So the local copy is never ahead of Kafka, and catching up after a restart or a rebalance means
reading the changelog from the stored offset on. One store per partition (as Faust does) keeps a
partition's keys together for the timer's rebuild and lets a partition be read on its own.

Two backends behind one interface: RocksDB (default; state lives on disk, memory stays flat
with 100k open episodes) and memory (tests, and a dev worker with nothing to keep). The same
contract tests run against both (tests/unit/test_state_store.py).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path

# Reserved key for the changelog offset; child keys are validated child_refs and never start
# with a NUL byte.
_OFFSET_KEY = b"\x00changelog-offset"

# Small buffers: state is small JSON read by key. One block cache is shared by every partition
# of the process, so memory does not grow with the partition count.
ROCKSDB_WRITE_BUFFER = 2 * 1024 * 1024
ROCKSDB_BLOCK_CACHE = 8 * 1024 * 1024


class StateStore(ABC):
    """Partition-aware bytes -> bytes store. ``None`` as a value deletes the key."""

    @abstractmethod
    def open(self, partition: int) -> None:
        """Make the partition readable and writable (idempotent)."""

    @abstractmethod
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    @abstractmethod
    def write(
        self, partition: int, entries: Mapping[bytes, bytes | None], changelog_offset: int
    ) -> None:
        """Apply ``entries`` and record ``changelog_offset`` in one atomic step."""

    @abstractmethod
    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]: ...

    @abstractmethod
    def changelog_offset(self, partition: int) -> int | None:
        """Offset of the last changelog record applied to the partition; None: none yet."""

    @abstractmethod
    def close(self) -> None: ...

    def reset(self, partition: int) -> None:
        """Forget a partition's contents (used when the changelog no longer covers them)."""
        raise NotImplementedError


class MemoryStore(StateStore):
    def __init__(self) -> None:
        self._data: dict[int, dict[bytes, bytes]] = {}
        self._offsets: dict[int, int] = {}

    def open(self, partition: int) -> None:
        self._data.setdefault(partition, {})

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self._data.get(partition, {}).get(key)

    def write(
        self, partition: int, entries: Mapping[bytes, bytes | None], changelog_offset: int
    ) -> None:
        data = self._data.setdefault(partition, {})
        for key, value in entries.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        self._offsets[partition] = changelog_offset

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from list(self._data.get(partition, {}).items())

    def changelog_offset(self, partition: int) -> int | None:
        return self._offsets.get(partition)

    def reset(self, partition: int) -> None:
        self._data.pop(partition, None)
        self._offsets.pop(partition, None)

    def close(self) -> None:
        pass


class RocksDBStore(StateStore):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dbs: dict[int, object] = {}
        self._cache: object | None = None

    def _path(self, partition: int) -> Path:
        return self.directory / f"partition-{partition}"

    def _db(self, partition: int) -> object:
        db = self._dbs.get(partition)
        if db is None:
            self.open(partition)
            db = self._dbs[partition]
        return db

    def open(self, partition: int) -> None:
        if partition in self._dbs:
            return
        import rocksdict

        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(ROCKSDB_WRITE_BUFFER)
        options.set_max_write_buffer_number(2)
        if self._cache is None:
            self._cache = rocksdict.Cache(ROCKSDB_BLOCK_CACHE)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self._cache)  # type: ignore[arg-type]
        options.set_block_based_table_factory(table)
        path = self._path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._dbs[partition] = rocksdict.Rdict(str(path), options)

    def get(self, partition: int, key: bytes) -> bytes | None:
        value = self._db(partition).get(key)  # type: ignore[attr-defined]
        return value if value is None else bytes(value)

    def write(
        self, partition: int, entries: Mapping[bytes, bytes | None], changelog_offset: int
    ) -> None:
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in entries.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(_OFFSET_KEY, str(changelog_offset).encode())
        self._db(partition).write(batch)  # type: ignore[attr-defined]

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db(partition).items():  # type: ignore[attr-defined]
            if not key.startswith(b"\x00"):
                yield bytes(key), bytes(value)

    def changelog_offset(self, partition: int) -> int | None:
        raw = self._db(partition).get(_OFFSET_KEY)  # type: ignore[attr-defined]
        return int(raw) if raw is not None else None

    def reset(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()  # type: ignore[attr-defined]
        shutil.rmtree(self._path(partition), ignore_errors=True)
        self.open(partition)

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()  # type: ignore[attr-defined]
        self._dbs.clear()


def open_store(url: str, directory: Path) -> StateStore:
    """``rocksdb://`` or ``memory://`` (the MISSING_ALERTS_STORE setting)."""
    if url.startswith("memory"):
        return MemoryStore()
    return RocksDBStore(directory)
