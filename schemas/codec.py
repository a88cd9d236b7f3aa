"""JSON on the wire, pydantic in memory.

Faust codecs only see bytes and objects, not target types, so producing goes through this codec
(any pydantic model -> JSON) while consuming decodes explicitly with the right TypeAdapter in the
agent: a bad record must become a dead letter, not an exception inside Faust's consumer.
"""

from __future__ import annotations

import json
from typing import Any

from faust.serializers import codecs

from schemas.wire import dumps

CODEC_NAME = "missing-alerts-json"


class PydanticJSONCodec(codecs.Codec):  # type: ignore[misc]
    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return json.loads(s)


def register() -> None:
    """Idempotent: Faust's registry is a module-level dict."""
    codecs.register(CODEC_NAME, PydanticJSONCodec())
