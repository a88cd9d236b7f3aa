"""Reload the rota and the API keys while the worker runs (issue 14): who is on duty tonight
changes, a key is revoked, and neither may wait for a restart.

A ``Reloader`` watches files by their stat stamp (inode, modification time, size), polled on a
timer and checked at once on SIGHUP (docs/duty-desk.md says why both). A changed file is loaded
and validated as at start-up, with the same one-line error; only a file that passes replaces
the one in use, so a half-written or wrong file leaves the old one working. Every change is
logged (the file, its SHA-256, what was applied or why it was refused; never its contents,
which hold phone numbers and key hashes) and counted (``missing_alerts_config_reloads_total``).

No Faust here: the loaders and appliers are functions given by the wiring (streams/reload.py),
so the rules are tested with plain files (tests/unit/test_config_reload.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from config.errors import ConfigError
from telemetry.logging import get_logger

log = get_logger("missing_alerts.config_reload")

Kind = Literal["rota", "api_keys"]
Outcome = Literal["applied", "refused", "unchanged"]
KINDS: Final = ("rota", "api_keys")
OUTCOMES: Final = ("applied", "refused")

Stamp = tuple[int, int, int]


def stamp(path: Path) -> Stamp | None:
    """What changes when a file is replaced or rewritten (an editor's rename gives a new inode,
    an in-place write a new mtime or size); None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


@dataclass
class Watched:
    """One file: how to load and check it (raises ConfigError), and how to put it in use."""

    kind: Kind
    path: Path
    load: Callable[[], Any]
    apply: Callable[[Any], None]
    seen: Stamp | None = field(default=None)

    def __post_init__(self) -> None:
        self.seen = stamp(self.path)  # what the worker started with


@dataclass
class Reloader:
    files: list[Watched]
    count: Callable[[Kind, Outcome], None] = lambda _kind, _outcome: None

    def check(self) -> list[tuple[Kind, Outcome, str]]:
        """Look at every file once; a changed one is loaded, and applied only if it passes."""
        return [self._one(w) for w in self.files]

    def _one(self, w: Watched) -> tuple[Kind, Outcome, str]:
        now = stamp(w.path)
        if now == w.seen:
            return (w.kind, "unchanged", "")
        # Remembered whatever happens next: a refused file is not retried until it changes.
        w.seen = now
        sha = digest(w.path)
        try:
            if now is None:
                raise ConfigError(f"{w.path}: cannot read (missing or not permitted)")
            loaded = w.load()
            w.apply(loaded)
        except ConfigError as exc:
            self.count(w.kind, "refused")
            log.error(
                "config refused, the one in use stays", kind=w.kind, sha256=sha, error=str(exc)
            )
            return (w.kind, "refused", str(exc))
        self.count(w.kind, "applied")
        log.warning("config reloaded", kind=w.kind, sha256=sha, path=str(w.path))
        return (w.kind, "applied", sha)
