"""Named crash points, after TiKV's fail-rs and FoundationDB's simulation: every window in
which a crash could lose or double something has a name, and a test that exits the process
exactly there (``os._exit``: no cleanup, no flush, no commit, like a SIGKILL) and checks what
the restart makes of it.

Armed only when ``MISSING_ALERTS_ENVIRONMENT=test``, by
``MISSING_ALERTS_FAILPOINTS=name[:count[:action]],...``: the ``count``-th time (default the
first) the process reaches ``name`` it exits (``exit``, the default), or stops itself with
SIGSTOP (``stop``: a process frozen in the middle of its work, which a test later resumes with
SIGCONT to see what a zombie can still do). Unarmed, ``failpoint`` is one dictionary lookup.

The names (docs/engine-runtime.md says what each proves):

- ``engine.after_produce_before_commit``: a batch's records sent, its transaction (or, at least
  once, its offset commit) not yet committed;
- ``engine.after_commit_before_store``: committed, the local store not yet written;
- ``engine.after_store_before_poll``: stored, the next batch not yet fetched;
- ``dispatch.after_send_before_record``: the provider accepted a message, its delivery record
  not yet written;
- ``dispatch.after_record_before_ack``: the record written, the input not yet acknowledged.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, NoReturn

NAMES: Final = frozenset(
    {
        "engine.after_produce_before_commit",
        "engine.after_commit_before_store",
        "engine.after_store_before_poll",
        "dispatch.after_send_before_record",
        "dispatch.after_record_before_ack",
    }
)
EXIT_CODE: Final = 86  # tells a failpoint exit from any other


def parse(spec: str) -> dict[str, tuple[int, str]]:
    """``name[:count[:action]],...`` -> name -> (the hit that fires, the action); unknown
    names and actions are an error (a typo would otherwise leave a test passing without its
    crash)."""
    armed: dict[str, tuple[int, str]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rest = item.partition(":")
        count, _, action = rest.partition(":")
        if name not in NAMES:
            raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(NAMES))}")
        if action not in ("", "exit", "stop"):
            raise ValueError(f"failpoint {name!r}: the action is 'exit' or 'stop'")
        armed[name] = (int(count) if count else 1, action or "exit")
        if armed[name][0] < 1:
            raise ValueError(f"failpoint {name!r}: the count must be 1 or more")
    return armed


def _exit(name: str) -> NoReturn:
    print(f"failpoint {name} reached: exiting", file=sys.stderr, flush=True)
    os._exit(EXIT_CODE)


def _stop(name: str) -> None:
    print(f"failpoint {name} reached: stopping (SIGSTOP)", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)


_ACTIONS: Final[dict[str, Callable[[str], object]]] = {"exit": _exit, "stop": _stop}


def _from_environment() -> tuple[dict[str, int], dict[str, Callable[[str], object]]]:
    if os.environ.get("MISSING_ALERTS_ENVIRONMENT") != "test":
        return {}, {}
    parsed = parse(os.environ.get("MISSING_ALERTS_FAILPOINTS", ""))
    return (
        {name: count for name, (count, _) in parsed.items()},
        {name: _ACTIONS[action] for name, (_, action) in parsed.items()},
    )


_ARMED, _ACTION = _from_environment()
_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    if not _ARMED or name not in _ARMED:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] == _ARMED[name]:  # that hit only: a stopped process carries on after
        _ACTION.get(name, _exit)(name)


@contextmanager
def armed(name: str, action: Callable[[str], object], count: int = 1) -> Iterator[None]:
    """In-process tests: run ``action`` (e.g. raise a crash) at the ``count``-th hit of
    ``name`` instead of exiting, so unit tests crash at the very points the process tests do."""
    parse(name)
    _ARMED[name], _ACTION[name], _HITS[name] = count, action, 0
    try:
        yield
    finally:
        _ARMED.pop(name, None)
        _ACTION.pop(name, None)
        _HITS.pop(name, None)
