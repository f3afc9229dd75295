"""The learner: predict, record, learn — one labelled example at a time.

:meth:`Learner.process` is progressive validation in three lines: score the
example with the current model, record the score against the label in
:class:`~online_ctr.metrics.ProgressiveMetrics`, then learn it.

Late corrections (``late=True``: a click after the window closed, whose
negative was already learned) are learned as a new positive, and nothing is
unlearned (see :mod:`online_ctr.fnw`). The metrics count a late correction
as one more positive event, scored before it is learned: the metrics then
cover exactly the examples the model learned, and the model is judged on
the question it was asked at that moment. The price: that impression counts
twice (once negative, once positive), so the metrics' CTR reads
clicks / (impressions + late clicks), ~0.1% low at 3% late clicks.

Label order: the join emits a positive as soon as its click arrives but a
negative only when the window closes, so a stream consumer sees positives up
to a window earlier than the negatives of the same moment. Learned in that
order the model drifts up and down with the mix, and progressive metrics
flatter it (a model that only tracks "recent labels are positive" scores a
high AUC). :meth:`Learner.submit` therefore holds each example in a reorder
buffer keyed by when its window closes (``ts + window``) and learns it once
the join's watermark (the newest ``labelled_at`` of the slowest partition)
has passed that point, so examples are learned in impression-time order.
On a quiet stream no new label says that time has passed, so the join also
sends its watermark on its own (:meth:`Learner.advance`): the buffer then
empties in order as windows close, whatever the traffic. Nothing is learned
before the watermark of its own partition has passed its window close,
except by :meth:`Learner.flush_unscored` (the join's watermark has stopped
for a long time), which learns without scoring: metrics never include an
example judged before its label was final. :meth:`Learner.flush` (scored)
is for the end of an offline stream, when every label is known.

Replays: the join delivers at least once, so :meth:`Learner.submit` drops a
``label_id`` it has already taken (label ids are deterministic per
impression and outcome), remembering each for ``dedup_horizon_s`` of label
time past the watermark.

>>> from online_ctr.models import make_model
>>> learner = Learner(make_model())
>>> learner.metrics.snapshot()["count"]
0
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from online_ctr.features import DEFAULT_SPEC, FeatureSpec, featurize
from online_ctr.fnw import FNW
from online_ctr.metrics import ProgressiveMetrics
from schemas.events import Impression, LabelledImpression

__all__ = ["Embedding", "Learner"]

Embedding = Sequence[float] | None
_Pending = tuple[float, int, LabelledImpression, Embedding, Embedding]


class Learner:
    """A River model with its features and progressive metrics: what is checkpointed.

    Parameters
    ----------
    model
        A River binary classifier taking ``learn_one(x, y, w=...)``
        (see :func:`online_ctr.models.make_model`).
    fnw
        Weight examples by fake-negative weighting; off by default, see
        :mod:`online_ctr.fnw` for the measurement behind that.
    window_s
        The join's attribution window: how long :meth:`submit` holds an
        example so it is learned in impression-time order.
    dedup_horizon_s
        How long (in label time, past the watermark) a ``label_id`` is
        remembered to drop replays; defaults to ``window_s``.
    spec
        The features' crosses; kept with the model its weights belong to.
    """

    #: examples learned by :meth:`flush_unscored` (class default: older pickles)
    unscored = 0

    def __init__(
        self,
        model: Any,
        fnw: bool = False,
        window_s: float = 1800.0,
        dedup_horizon_s: float | None = None,
        spec: FeatureSpec = DEFAULT_SPEC,
    ) -> None:
        self.model = model
        self.weighting = FNW(enabled=fnw)
        self.window_s = window_s
        self.dedup_horizon_s = window_s if dedup_horizon_s is None else dedup_horizon_s
        self.spec = spec
        self.metrics = ProgressiveMetrics()
        self.learned = 0
        self.duplicates = 0
        self.watermark = float("-inf")
        self._partition_watermarks: dict[str, float] = {}
        self._buffer: list[_Pending] = []
        self._seq = 0
        self._seen: set[str] = set()
        self._seen_expiry: list[tuple[float, str]] = []

    @property
    def buffered(self) -> int:
        """Examples waiting in the reorder buffer."""
        return len(self._buffer)

    def submit(
        self,
        labelled: LabelledImpression,
        source: str = "",
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
    ) -> int:
        """Buffer one example; learn every example now due. Returns how many were learned.

        ``source`` names the input partition: each join partition has its own
        watermark, and only the slowest one says what is safe to release.
        """
        previous = self._partition_watermarks.get(source, float("-inf"))
        self._partition_watermarks[source] = max(previous, labelled.labelled_at)
        self.watermark = min(self._partition_watermarks.values())
        self._forget_expired()
        if labelled.label_id in self._seen:
            self.duplicates += 1
        else:
            self._seen.add(labelled.label_id)
            expiry = labelled.labelled_at + self.dedup_horizon_s
            heapq.heappush(self._seen_expiry, (expiry, labelled.label_id))
            self._seq += 1
            due = labelled.ts + self.window_s
            heapq.heappush(
                self._buffer, (due, self._seq, labelled, image_embedding, title_embedding)
            )
        return self._release(self.watermark)

    def advance(self, source: str, watermark: float | None) -> int:
        """The join says ``source``'s watermark reached ``watermark``; learn what is due.

        ``None`` (a partition that has seen no event) says nothing.
        """
        if watermark is None:
            return 0
        previous = self._partition_watermarks.get(source, float("-inf"))
        self._partition_watermarks[source] = max(previous, watermark)
        self.watermark = min(self._partition_watermarks.values())
        self._forget_expired()
        return self._release(self.watermark)

    def flush(self) -> int:
        """Learn and score everything still buffered: only at the end of a finished stream.

        Scored is honest only when every label of the buffered windows is
        known (an offline stream read to its end); a live stream that merely
        went quiet must use :meth:`flush_unscored`.
        """
        return self._release(float("inf"))

    def flush_unscored(self) -> int:
        """Learn everything buffered without recording it in the metrics.

        For a live stream whose watermark has stopped: those windows may
        still be open, so scoring them now would let positives be judged
        before the negatives of their time and flatter the model.
        """
        n = 0
        while self._buffer:
            _, _, labelled, image, title = heapq.heappop(self._buffer)
            self.process(labelled, image, title, scored=False)
            n += 1
        self.unscored += n
        return n

    def _forget_expired(self) -> None:
        while self._seen_expiry and self._seen_expiry[0][0] < self.watermark:
            _, label_id = heapq.heappop(self._seen_expiry)
            self._seen.discard(label_id)

    def _release(self, up_to: float) -> int:
        n = 0
        while self._buffer and self._buffer[0][0] <= up_to:
            _, _, labelled, image, title = heapq.heappop(self._buffer)
            self.process(labelled, image, title)
            n += 1
        return n

    def features(
        self,
        impression: Impression,
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
    ) -> dict[str, float]:
        """The feature dict this learner's model sees for ``impression``."""
        return featurize(impression, image_embedding, title_embedding, spec=self.spec)

    def predict_features(self, x: dict[str, float]) -> float:
        """Predicted click probability of a feature dict."""
        return float(self.model.predict_proba_one(x).get(True, 0.0))

    def predict(
        self,
        impression: Impression,
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
    ) -> float:
        """Predicted CTR for serving; nothing in the learner changes.

        River 0.23 pipelines update their unsupervised steps while predicting
        only inside ``compose.learn_during_predict()`` (the opt-in that later
        releases turned around into ``pure_inference_mode``), and the
        registered models have no such steps; the contract suite checks that
        predicting leaves every registered model unchanged.
        """
        return self.predict_features(self.features(impression, image_embedding, title_embedding))

    def process(
        self,
        labelled: LabelledImpression,
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
        scored: bool = True,
    ) -> float:
        """Score, record, then learn one example; returns the score made before learning.

        ``scored=False`` learns without recording the score in the metrics.
        """
        x = self.features(labelled, image_embedding, title_embedding)
        p = self.predict_features(x)
        y = self.weighting.label(labelled)
        if scored:
            self.metrics.update(p, y, labelled.segment.key())
        self.model.learn_one(x, y, w=self.weighting.weight(p, y))
        self.learned += 1
        return p
