"""Our wire format, and the one codec protocol every topic and table uses.

JSON, one pydantic model (or union) per topic. Table values that a timer or a rebuild must read
without parsing the whole record are "headered": one JSON line the reader needs (due time,
child, ...), a newline, then the record's JSON. No Faust here, so the engine process, which
does not run Faust, encodes and decodes the same way; Faust's own codec (schemas/codec.py)
wraps ``dumps``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")


def dumps(obj: Any) -> bytes:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json().encode()
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, raw: bytes) -> T: ...


@dataclass(frozen=True)
class JsonCodec(Generic[T]):
    """A model or a discriminated union, validated on decode (raises ValidationError)."""

    adapter: TypeAdapter[T]

    def encode(self, value: T) -> bytes:
        return self.adapter.dump_json(value)

    def decode(self, raw: bytes) -> T:
        return self.adapter.validate_json(raw)


class RawCodec:
    """Bytes as they are (keys and values that are a bare reference, e.g. a child)."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, raw: bytes) -> bytes:
        return raw


@dataclass(frozen=True)
class HeaderedCodec(Generic[T]):
    """The table codec: a one-line JSON header, a newline, the record's JSON.

    ``header`` and ``body`` write the two parts of a value; ``read`` turns them back into one.
    Readers that need only one part (a timer rebuild: the header; a state read: the body) take
    it with ``header_of`` / ``body_of`` and skip the other.
    """

    header: Callable[[T], bytes]
    body: Callable[[T], bytes]
    read: Callable[[bytes, bytes], T]  # (header line, body) -> value

    def encode(self, value: T) -> bytes:
        return self.header(value) + b"\n" + self.body(value)

    def decode(self, raw: bytes) -> T:
        line, _, body = raw.partition(b"\n")
        return self.read(line, body)

    @staticmethod
    def header_of(raw: bytes) -> dict[str, Any]:
        header: dict[str, Any] = json.loads(raw.partition(b"\n")[0])
        return header

    @staticmethod
    def body_of(raw: bytes) -> bytes:
        return raw.partition(b"\n")[2]


def model_codec(model: type[T]) -> JsonCodec[T]:
    return JsonCodec(TypeAdapter(model))
