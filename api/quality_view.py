"""Per-audience model quality as the learner published it: ``GET /quality`` and its gauges.

Pure: takes the model metrics document (``P model:metrics``) and reads its
``quality`` block (written by :mod:`streams.learner.quality` from
:class:`online_ctr.segment_quality.SegmentQuality`), so the route, the
Prometheus families and the report read one shape.

Only the values *judged* (with the configured minimum impressions and
clicks) are exported to Prometheus, flagged ones first, then by impressions,
at most :data:`MAX_SERIES`: the label cardinality stays bounded however many
values producers invent (the learner already caps them per field).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from online_ctr.segment_quality import REASONS
from schemas.metric_names import SEGMENT_QUALITY, SEGMENT_QUALITY_FLAG
from streams.telemetry import Metric, gauge_family

__all__ = ["MAX_SERIES", "exported_segments", "quality_block", "quality_families"]

#: segment values exported as gauges at most (flagged first, then by impressions)
MAX_SERIES = 100


def quality_block(model: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``quality`` block of a model metrics document; None when absent or malformed."""
    block = (model or {}).get("quality")
    if not isinstance(block, Mapping) or not isinstance(block.get("segments"), list):
        return None
    return block


def exported_segments(
    model: Mapping[str, Any] | None, limit: int = MAX_SERIES
) -> list[Mapping[str, Any]]:
    """The judged segment values whose gauges ``/metrics`` exports, in that order."""
    block = quality_block(model)
    if block is None:
        return []
    judged = [
        s
        for s in block["segments"]
        if isinstance(s, Mapping)
        and s.get("judged") is True
        and isinstance(s.get("field"), str)
        and isinstance(s.get("value"), str)
    ]
    judged.sort(key=lambda s: (not s.get("flags"), -(_number(s.get("count")) or 0.0)))
    return judged[:limit]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def quality_families(model: Mapping[str, Any] | None) -> Iterator[Metric]:
    """``bertctr_segment_{ne,calibration,auc,share}`` and ``bertctr_segment_quality_flag``."""
    segments = exported_segments(model)
    for key, metric in SEGMENT_QUALITY.items():
        rows = []
        for s in segments:
            number = _number(s.get(key))
            if number is not None:
                rows.append(((s["field"], s["value"]), number))
        yield gauge_family(metric, rows)
    flags = []
    for s in segments:
        found = s.get("flags")
        raised = found if isinstance(found, list) else []
        for reason in REASONS:
            flags.append(((s["field"], s["value"], reason), 1.0 if reason in raised else 0.0))
    yield gauge_family(SEGMENT_QUALITY_FLAG, flags)
