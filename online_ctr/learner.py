"""The learner: predict, record, learn — one labelled example at a time.

Late corrections: the join emits a negative when the window closes and, if a
click comes later, a positive marked ``late``. Both are learned, as in
fake-negative weighting (Ktena et al. 2019): the late positive is a new
example, history is not rewritten. With FNW on, each example is weighted by
the model's current prediction ``p`` (held constant, no gradient through it):
positives by ``1 + p``, negatives by ``(1 - p)(1 + p)``. Metrics count a late
correction as one more (positive) event, scored before it is learned, so they
measure exactly what the model was asked to predict.

Label order: the join emits a positive as soon as its click arrives but a
negative only when the window closes, so a stream consumer sees positives up
to a window earlier than the negatives of the same moment. Learned in that
order the model drifts up and down with the mix, and progressive metrics
flatter it (a model that only tracks "recent labels are positive" scores a
high AUC). :meth:`Learner.submit` therefore holds each example in a reorder
buffer keyed by when its window closes (``ts + window``) and learns it once
the join's watermark (the newest ``labelled_at`` of the slowest partition)
has passed that point, so
examples are learned in impression-time order. :meth:`Learner.flush` releases
the rest when the stream goes quiet.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from online_ctr.features import featurize
from online_ctr.metrics import ProgressiveMetrics
from schemas.events import Impression, LabelledImpression


def fnw_weight(p: float, clicked: bool) -> float:
    """Fake-negative weight of one example given the prediction ``p``."""
    return 1.0 + p if clicked else (1.0 - p) * (1.0 + p)


class Learner:
    """A River model with progressive metrics; the unit that is checkpointed."""

    def __init__(self, model: Any, fnw: bool = True, window_s: float = 1800.0) -> None:
        self.model = model
        self.fnw = fnw
        self.window_s = window_s
        self.metrics = ProgressiveMetrics()
        self.learned = 0
        self.watermark = float("-inf")
        self._partition_watermarks: dict[str, float] = {}
        self._buffer: list[tuple[float, str, LabelledImpression]] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def submit(self, labelled: LabelledImpression, source: str = "") -> int:
        """Buffer one example; learn every example now due. Returns how many were learned.

        ``source`` names the input partition: each join partition has its own
        watermark, and only the slowest one says what is safe to release.
        """
        key = labelled.ts + self.window_s
        heapq.heappush(self._buffer, (key, labelled.label_id, labelled))
        previous = self._partition_watermarks.get(source, float("-inf"))
        self._partition_watermarks[source] = max(previous, labelled.labelled_at)
        self.watermark = min(self._partition_watermarks.values())
        return self._release(self.watermark)

    def flush(self) -> int:
        """Learn everything still buffered (the stream went quiet)."""
        return self._release(float("inf"))

    def _release(self, up_to: float) -> int:
        n = 0
        while self._buffer and self._buffer[0][0] <= up_to:
            _, _, labelled = heapq.heappop(self._buffer)
            self.process(labelled)
            n += 1
        return n

    def predict_features(self, x: dict[str, float]) -> float:
        proba = self.model.predict_proba_one(x)
        return float(proba.get(True, 0.0))

    def predict(
        self,
        impression: Impression,
        image_embedding: Sequence[float] | None = None,
        title_embedding: Sequence[float] | None = None,
    ) -> float:
        """Predicted CTR for serving: no state of the model changes.

        The registered models are linear with no stateful preprocessing, so
        predicting never updates them (River 0.23 has no pure_inference_mode;
        a model with running statistics would need it).
        """
        return self.predict_features(featurize(impression, image_embedding, title_embedding))

    def process(
        self,
        labelled: LabelledImpression,
        image_embedding: Sequence[float] | None = None,
        title_embedding: Sequence[float] | None = None,
    ) -> float:
        """Score, record, then learn one example; returns the prediction."""
        x = featurize(labelled, image_embedding, title_embedding)
        p = self.predict_features(x)
        y = bool(labelled.clicked)
        self.metrics.update(p, y, labelled.segment.key())
        w = fnw_weight(p, y) if self.fnw else 1.0
        self.model.learn_one(x, y, w=w)
        self.learned += 1
        return p
