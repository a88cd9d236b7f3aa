"""Our wire format: JSON, one pydantic model per record. No Faust here, so processes that do
not run Faust (the engine) can produce it without importing it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def dumps(obj: Any) -> bytes:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json().encode()
    return json.dumps(obj, separators=(",", ":"), default=str).encode()
