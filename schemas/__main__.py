"""``python -m schemas export [DIR]``: regenerate the JSON Schema files."""

from __future__ import annotations

import sys
from pathlib import Path

from schemas.export import JSON_DIR, write_all


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "export":
        print("usage: python -m schemas export [DIR]", file=sys.stderr)
        return 2
    directory = Path(argv[1]) if len(argv) > 1 else JSON_DIR
    for path in write_all(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
