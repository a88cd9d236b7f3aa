"""What a scenario hands back: figures with their targets, settings, notes, extra sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    target: str = ""  # human-readable, e.g. ">= 10,000 events/s"
    met: bool | None = None  # None: no target
    fmt: str = "{:,.0f}"
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        return self.fmt.format(self.value)

    @property
    def status(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else "not met"


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


@dataclass
class Result:
    scenario: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, markdown)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> CpuWatch result
    seconds: float = 0.0
    error: str | None = None

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure
