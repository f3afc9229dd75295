"""Model quality per audience: NE, calibration and AUC per segment field value, with flags.

The whole-stream figures of :mod:`online_ctr.metrics` can look fine while
the model is badly wrong for one audience (a new country, a device whose
traffic shifted). :class:`SegmentQuality` keeps the same progressive
figures for every value of every segment field (``device=mobile``,
``geo=DE``, ``taste=t1``, and any extra field producers add), over a
sliding window, and flags a value whose calibration leaves the configured
band or whose NE is worse than the whole model's (over the same window) by
more than a margin, once it has enough impressions and clicks to say so.

The window counts **examples, not event time**: the learner scores each
partition in impression-time order but partitions are not aligned, and a
backlog or replay crowds hours of event time into seconds, so a time window
would hold an unbounded number of examples during a burst and none when
traffic is thin. A window of the newest ``window`` scored examples holds
exactly that many entries (bounded memory) and always judges on the same
amount of evidence. Values per field are capped (``max_values``; later ones
share :data:`OTHER_VALUE`) and so are fields (:data:`MAX_FIELDS`), so
free-form segment fields can grow neither memory nor metric labels; a
value whose last example leaves the window frees its slot.

>>> q = SegmentQuality(QualityRules(window=4, min_impressions=2, min_clicks=1))
>>> for p, y, seg in [(0.1, True, "device=tv,geo=DE"),  # leaves the window below
...                   (0.5, True, "device=mobile,geo=DE"), (0.1, False, "device=mobile,geo=DE"),
...                   (0.9, False, "device=desktop,geo=DE"), (0.5, True, "device=desktop,geo=DE")]:
...     q.update(p, y, seg)
>>> doc = q.snapshot()
>>> for s in doc["segments"]:
...     print(f"{s['field']}={s['value']}", s["count"], s["flags"])
device=desktop 2 ['calibration_high', 'ne']
device=mobile 2 ['calibration_low']
geo=DE 4 []
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from online_ctr.metrics import GroupMetrics, score_bin
from schemas.events import MAX_SEGMENT_FIELDS
from schemas.settings import Settings, default_of

__all__ = [
    "CALIBRATION_HIGH",
    "CALIBRATION_LOW",
    "MAX_FIELDS",
    "NE",
    "OTHER_VALUE",
    "REASONS",
    "QualityRules",
    "SegmentQuality",
    "judge",
]

#: the flag reasons (the ``reason`` label of ``bertctr_segment_quality_flag``)
CALIBRATION_LOW = "calibration_low"
CALIBRATION_HIGH = "calibration_high"
NE = "ne"
REASONS = (CALIBRATION_LOW, CALIBRATION_HIGH, NE)
#: the value (and field) that pools what the caps leave out
OTHER_VALUE = "__other__"
#: segment fields tracked on their own (an event carries at most this many)
MAX_FIELDS = MAX_SEGMENT_FIELDS
_EPS = 1e-7

#: one window entry: prediction, label, its log loss and score bin, its groups
_Entry = tuple[float, bool, float, int, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class QualityRules:
    """The window, and when a segment value is judged and flagged (``BERTCTR_QUALITY_*``)."""

    window: int = default_of("quality_window")
    min_impressions: int = default_of("quality_min_impressions")
    min_clicks: int = default_of("quality_min_clicks")
    calibration_low: float = default_of("quality_calibration_low")
    calibration_high: float = default_of("quality_calibration_high")
    ne_margin: float = default_of("quality_ne_margin")
    max_values: int = default_of("quality_max_values")

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_values < 1:
            raise ValueError("window and max_values must be positive")
        if not 0 < self.calibration_low <= 1 <= self.calibration_high:
            raise ValueError(
                f"calibration band [{self.calibration_low}, {self.calibration_high}] must hold 1"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> QualityRules:
        return cls(
            window=settings.quality_window,
            min_impressions=settings.quality_min_impressions,
            min_clicks=settings.quality_min_clicks,
            calibration_low=settings.quality_calibration_low,
            calibration_high=settings.quality_calibration_high,
            ne_margin=settings.quality_ne_margin,
            max_values=settings.quality_max_values,
        )


class _WindowGroup(GroupMetrics):
    """:class:`GroupMetrics` that examples also leave (weight -1), fed precomputed terms.

    The log loss and score bin of an example are computed once for all its
    groups (one per segment field, plus the whole window); ``auc`` and
    ``snapshot`` are GroupMetrics' own.
    """

    def add(self, p: float, y: bool, loss: float, b: int, w: float) -> None:
        self.count += w
        self.sum_p += w * p
        self.sum_logloss += w * loss
        bins = self._pos_bins if y else self._neg_bins
        left = bins.get(b, 0.0) + w
        if left:
            bins[b] = left
        else:
            del bins[b]
        if y:
            self.positives += w


def judge(figures: Mapping[str, Any], overall_ne: float | None, rules: QualityRules) -> list[str]:
    """The flag reasons of one segment value's figures (``[]``: fine, or not enough data).

    >>> rules = QualityRules(min_impressions=100, min_clicks=5)
    >>> judge({"count": 400, "clicks": 9, "calibration": 1.5, "ne": 0.9}, 0.9, rules)
    ['calibration_high']
    >>> judge({"count": 40, "clicks": 9, "calibration": 1.5, "ne": 0.9}, 0.9, rules)
    []
    """
    if figures["count"] < rules.min_impressions or figures["clicks"] < rules.min_clicks:
        return []
    reasons = []
    calibration = figures.get("calibration")
    if calibration is not None and calibration < rules.calibration_low:
        reasons.append(CALIBRATION_LOW)
    if calibration is not None and calibration > rules.calibration_high:
        reasons.append(CALIBRATION_HIGH)
    ne = figures.get("ne")
    if ne is not None and overall_ne is not None and ne > overall_ne + rules.ne_margin:
        reasons.append(NE)
    return reasons


def _fields(segment: Mapping[str, str] | str) -> tuple[tuple[str, str], ...]:
    """``(field, value)`` pairs of a segment dict or key (``device=mobile,geo=DE``)."""
    if isinstance(segment, str):
        pairs = (part.partition("=") for part in segment.split(",") if part)
        return tuple(sorted((k, v) for k, _, v in pairs))
    return tuple(sorted(segment.items()))


class SegmentQuality:
    """Progressive figures per segment field value over the newest ``rules.window`` examples.

    Feed it what progressive validation scores (:meth:`update`, the
    prediction made before the label was learned); :meth:`snapshot` is the
    JSON document the learner publishes under ``quality``.
    """

    def __init__(self, rules: QualityRules | None = None) -> None:
        self.rules = rules or QualityRules()
        self.overall = _WindowGroup()
        self.groups: dict[tuple[str, str], _WindowGroup] = {}
        self._values: dict[str, int] = {}  # field -> values tracked
        self._window: deque[_Entry] = deque()
        self._parsed: dict[str, tuple[tuple[str, str], ...]] = {}

    def __len__(self) -> int:
        return len(self._window)

    def update(self, p: float, y: bool, segment: Mapping[str, str] | str) -> None:
        """Record one scored example of ``segment`` (a dict, or its key); the oldest may leave."""
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"prediction {p!r} is not a probability")
        if isinstance(segment, str):
            pairs = self._parsed.get(segment)
            if pairs is None:
                if len(self._parsed) >= 10 * self.rules.window:
                    self._parsed.clear()
                pairs = self._parsed[segment] = _fields(segment)
        else:
            pairs = _fields(segment)
        q = min(max(p, _EPS), 1.0 - _EPS)
        loss = -math.log(q) if y else -math.log(1.0 - q)
        entry = (p, y, loss, score_bin(p), tuple(self._slot(f, v) for f, v in pairs))
        self._apply(entry, 1.0)
        self._window.append(entry)
        while len(self._window) > self.rules.window:
            self._apply(self._window.popleft(), -1.0)

    def _slot(self, field: str, value: str) -> tuple[str, str]:
        """The group an example's ``field=value`` counts in, under the caps."""
        key = (field, value)
        if key in self.groups:
            return key
        if field not in self._values and len(self._values) >= MAX_FIELDS:
            return (OTHER_VALUE, OTHER_VALUE)
        if self._values.get(field, 0) >= self.rules.max_values:
            return (field, OTHER_VALUE)
        return key

    def _apply(self, entry: _Entry, w: float) -> None:
        p, y, loss, b, groups = entry
        self.overall.add(p, y, loss, b, w)
        for key in groups:
            group = self.groups.get(key)
            own = key[1] != OTHER_VALUE  # a value of its own takes one of its field's slots
            if group is None:
                group = self.groups[key] = _WindowGroup()
                if own:
                    self._values[key[0]] = self._values.get(key[0], 0) + 1
            group.add(p, y, loss, b, w)
            if group.count <= 0:  # its last example left: free the slot
                del self.groups[key]
                if own:
                    self._values[key[0]] -= 1
                    if not self._values[key[0]]:
                        del self._values[key[0]]

    def snapshot(self) -> dict[str, Any]:
        """``window``, ``examples``, ``rules``, ``overall`` and ``segments``, JSON-ready.

        Each segment: ``field``, ``value``, ``count``, ``clicks``, ``share``
        (of the window's impressions), ``ne``, ``calibration``, ``auc``,
        ``ctr``, ``logloss``, ``judged`` (enough data) and ``flags``.
        """
        overall = self._figures(self.overall)
        segments = []
        for (field, value), group in sorted(self.groups.items()):
            figures = self._figures(group)
            judged = (
                figures["count"] >= self.rules.min_impressions
                and figures["clicks"] >= self.rules.min_clicks
            )
            segments.append(
                {
                    "field": field,
                    "value": value,
                    **figures,
                    "share": group.count / self.overall.count if self.overall.count else None,
                    "judged": judged,
                    "flags": judge(figures, overall["ne"], self.rules),
                }
            )
        return {
            "window": self.rules.window,
            "examples": len(self._window),
            "rules": asdict(self.rules),
            "overall": overall,
            "segments": segments,
        }

    @staticmethod
    def _figures(group: GroupMetrics) -> dict[str, Any]:
        figures = group.snapshot()
        figures["clicks"] = round(group.positives)
        return figures
