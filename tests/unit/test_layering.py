"""The house rules of the code base, checked on the source: no import cycles anywhere (late
imports inside functions included: they hide a cycle, they do not remove it), the layers
import one way, and the pure modules never import Faust or do I/O."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.worker import REPO

PACKAGES = ("schemas", "config", "telemetry", "alerts", "streams")
# A layer may import its own and lower layers only.
LAYERS = {name: rank for rank, name in enumerate(PACKAGES)}
PURE = (
    "streams.episodes",
    "alerts.rota",
    "alerts.templates",
    "alerts.fanout",
    "alerts.delivery_log",
    "alerts.notified",
    "alerts.notification_views",
    "streams.web.episode_notifications",
    "config.policy",
    "streams.dispatch.stages",
    "streams.dispatch.retention",
    "streams.engine.output",
    "streams.episodes.codec",
)
IMPURE = ("faust", "mode", "aiokafka", "aiohttp", "rocksdict", "twilio", "aiosmtplib", "yaml")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(name: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skip |= {id(n) for n in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target in imported(name, path):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle among modules (a package's __init__ importing its own submodules is not one:
    importing ``a.b`` loads ``a`` first, whatever ``a`` imports)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a.b"}, "a.b": set()}) is None


def test_layers_import_one_way() -> None:
    wrong = [
        (src, dst)
        for src, dsts in graph().items()
        for dst in dsts
        if LAYERS[dst.split(".")[0]] > LAYERS[src.split(".")[0]]
    ]
    assert not wrong, wrong


def test_pure_modules_import_no_io_library() -> None:
    mods = modules()
    bad = []
    for name, path in mods.items():
        if not name.startswith(PURE):
            continue
        for target in imported(name, path):
            if target.split(".")[0] in IMPURE:
                bad.append((name, target))
    assert not bad, bad
