"""The serving model's per-audience quality, fed by its progressive validation.

The learner (pure, :class:`~online_ctr.learner.Learner`) records every
scored example in its :class:`~online_ctr.metrics.ProgressiveMetrics`; a
:class:`QualityTap` in its place records the same ``(p, y, segment)`` in
a :class:`~online_ctr.segment_quality.SegmentQuality` too, so per-audience
quality sees exactly the examples the whole-stream figures see, scored
before they were learned, without the learner knowing.

The window is the worker's, not the model's: a tap pickles as the plain
``ProgressiveMetrics`` it wraps, so checkpoints (and the challenger, a deep
copy of the champion) are what they were, and a restarted or newly elected
learner starts with an empty window. When the duel promotes a challenger,
:meth:`SegmentQualityFeed.follow` sees a new champion and starts its window
afresh: the figures are always one model's.
"""

from __future__ import annotations

from typing import Any

from online_ctr.learner import Learner
from online_ctr.metrics import ProgressiveMetrics
from online_ctr.segment_quality import QualityRules, SegmentQuality

__all__ = ["QualityTap", "SegmentQualityFeed"]


class QualityTap(ProgressiveMetrics):
    """Progressive metrics that also feed a :class:`SegmentQuality` (never pickled as such)."""

    quality: SegmentQuality

    @classmethod
    def wrap(cls, metrics: ProgressiveMetrics, quality: SegmentQuality) -> QualityTap:
        """A tap with ``metrics``' state (its figures go on from where they were)."""
        tap = cls.__new__(cls)
        tap.__dict__.update(metrics.__dict__)
        tap.quality = quality
        return tap

    def update(self, p: float, y: bool, segment: str | None = None, w: float = 1.0) -> None:
        super().update(p, y, segment, w)
        if segment is not None:
            self.quality.update(p, y, segment)

    def __reduce__(self) -> str | tuple[Any, ...]:
        """Pickle and copy as the plain metrics: snapshots never hold the worker's window."""
        state = {k: v for k, v in self.__dict__.items() if k != "quality"}
        return object.__new__, (ProgressiveMetrics,), state


class SegmentQualityFeed:
    """Keeps a tap on the serving learner; :meth:`snapshot` is the published ``quality``."""

    def __init__(self, rules: QualityRules) -> None:
        self.rules = rules
        self.quality = SegmentQuality(rules)
        self._learner: Learner | None = None

    def follow(self, learner: Learner) -> None:
        """Tap ``learner``'s metrics; a learner not followed before starts a fresh window."""
        if learner is self._learner and isinstance(learner.metrics, QualityTap):
            return
        if self._learner is not None and learner is not self._learner:
            self.quality = SegmentQuality(self.rules)
        learner.metrics = QualityTap.wrap(learner.metrics, self.quality)
        self._learner = learner

    def snapshot(self) -> dict[str, Any]:
        return self.quality.snapshot()
