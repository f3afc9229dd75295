"""CTR as Prometheus counters: impressions and clicks in total, per segment and per variant.

The live counters live in Redis (``bertctr stats``); a dashboard in Grafana
divides ``rate(clicks)`` by ``rate(impressions)``, so both are exported as
counters, read from the same stats document at scrape time. Segments and
variant names are unbounded sets, so only the ``max_series`` with the most
impressions of each are exported (Prometheus pays per series).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.metric_names import (
    CLICKS,
    IMPRESSIONS,
    SEGMENT_CLICKS,
    SEGMENT_IMPRESSIONS,
    VARIANT_CLICKS,
    VARIANT_IMPRESSIONS,
)
from streams.telemetry import Metric, counter_family

__all__ = ["CtrCounters", "ctr_families"]

#: (impressions, clicks)
Pair = tuple[int, int]


def _pair(counts: Mapping[str, Any]) -> Pair:
    return int(counts.get("impressions", 0)), int(counts.get("clicks", 0))


def _top(pairs: Mapping[str, Pair], n: int) -> dict[str, Pair]:
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return dict(ranked[:n])


@dataclass(frozen=True)
class CtrCounters:
    """One view's counts: in total, per segment and per variant name (summed over items)."""

    total: Pair
    segments: dict[str, Pair] = field(default_factory=dict)
    variants: dict[str, Pair] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], max_series: int) -> CtrCounters:
        """From a ``bertctr stats --json`` document (every item, every segment).

        >>> stats = {"total": {"impressions": 9, "clicks": 2},
        ...          "segments": {"geo=DE": {"impressions": 5, "clicks": 1},
        ...                       "geo=FR": {"impressions": 4, "clicks": 1}},
        ...          "items": {"a": {"variants": {"v0": {"impressions": 3, "clicks": 1}}},
        ...                    "b": {"variants": {"v0": {"impressions": 6, "clicks": 1}}}}}
        >>> c = CtrCounters.from_stats(stats, max_series=1)
        >>> c.total, c.segments, c.variants
        ((9, 2), {'geo=DE': (5, 1)}, {'v0': (9, 2)})
        """
        variants: dict[str, Pair] = {}
        for entry in stats.get("items", {}).values():
            for name, counts in entry.get("variants", {}).items():
                imp, clk = _pair(counts)
                seen = variants.get(name, (0, 0))
                variants[name] = (seen[0] + imp, seen[1] + clk)
        segments = {k: _pair(v) for k, v in stats.get("segments", {}).items()}
        return cls(
            total=_pair(stats.get("total", {})),
            segments=_top(segments, max_series),
            variants=_top(variants, max_series),
        )


def ctr_families(by_view: Mapping[str, CtrCounters]) -> Iterator[Metric]:
    """The six CTR counter families for every view read."""
    views = sorted(by_view.items())
    yield counter_family(IMPRESSIONS, (((v,), c.total[0]) for v, c in views))
    yield counter_family(CLICKS, (((v,), c.total[1]) for v, c in views))
    for imp_metric, clk_metric, attr in (
        (SEGMENT_IMPRESSIONS, SEGMENT_CLICKS, "segments"),
        (VARIANT_IMPRESSIONS, VARIANT_CLICKS, "variants"),
    ):
        rows = [(v, k, p) for v, c in views for k, p in getattr(c, attr).items()]
        yield counter_family(imp_metric, (((v, k), p[0]) for v, k, p in rows))
        yield counter_family(clk_metric, (((v, k), p[1]) for v, k, p in rows))
