"""One /metrics page for a worker made of two processes (the worker and its engine).

Both processes declare the same metric families (telemetry/metrics.py), each recording its own
part; Prometheus must see each family once. So the worker parses the engine's exposition and
merges it into its own: samples with the same name and labels are added (counters, histogram
buckets and sums, gauges such as consumer lag or resident memory, which are per-process parts
of one worker), except start times, where the earlier wins. ``*_created`` series of the engine
are dropped: they are optional, and re-encoding them correctly needs the family they belong to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

_EARLIEST = ("_start_time_seconds", "_created")


def _combine(name: str, a: float, b: float) -> float:
    return min(a, b) if name.endswith(_EARLIEST) else a + b


def merge_families(own: Iterable[Metric], other: Iterable[Metric]) -> list[Metric]:
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
    order: list[str] = []
    for family in [*own, *(f for f in other if not f.name.endswith("_created"))]:
        if family.name not in merged:
            merged[family.name] = Metric(
                family.name, family.documentation, family.type, family.unit
            )
            values[family.name] = {}
            order.append(family.name)
        samples = values[family.name]
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            seen = samples.get(key)
            if seen is None:
                samples[key] = sample
            else:
                samples[key] = seen._replace(value=_combine(sample.name, seen.value, sample.value))
    for name in order:
        merged[name].samples = list(values[name].values())
    return [merged[name] for name in order]


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def merged_registry(own: CollectorRegistry, other_text: str) -> CollectorRegistry:
    """A registry to encode (either exposition format) holding ``own`` plus the parsed text."""
    other = list(text_string_to_metric_families(other_text)) if other_text else []
    view = CollectorRegistry(auto_describe=False)
    view.register(_Fixed(merge_families(own.collect(), other)))
    return view
