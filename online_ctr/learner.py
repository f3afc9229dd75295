"""The learner: predict, record, learn — one labelled example at a time.

:meth:`Learner.predict_then_learn` is progressive validation in three lines: score the
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
the join's watermark of its partition (the newest ``labelled_at`` read from
that labelled partition, which carries exactly one join partition's labels
in the order they were decided) has passed that point, so each partition's
examples are learned in impression-time order. Partitions do not wait for
one another: a backlog read unevenly would otherwise hold a window of every
fast partition in memory, and in the checkpoint, for as long as the slowest
lags (``docs/measurements.md``).
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

>>> from online_ctr.models.registry import make_model
>>> learner = Learner(make_model())
>>> learner.metrics.snapshot()["count"]
0
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from online_ctr.features import DEFAULT_SPEC, AudienceFields, FeatureSpec, featurize
from online_ctr.fnw import FNW
from online_ctr.metrics import ProgressiveMetrics
from online_ctr.models.protocol import CtrModel
from schemas.events import Impression, LabelledImpression

__all__ = ["Content", "Embedding", "Learner"]

Embedding = Sequence[float] | None


class Content(Protocol):
    """An example's image and title embeddings as one arm learns them (either may be missing).

    The embedder's results have this shape; so does a plain
    ``types.SimpleNamespace(image=..., title=...)`` in tests.
    """

    @property
    def image(self) -> Embedding: ...

    @property
    def title(self) -> Embedding: ...


_Pending = tuple[float, int, LabelledImpression, Embedding, Embedding]


class Learner:
    """A River model with its features and progressive metrics: what is checkpointed.

    Parameters
    ----------
    model
        The click model (:class:`~online_ctr.models.protocol.CtrModel`; see
        :func:`online_ctr.models.registry.make_model`).
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
        The features' crosses; kept with the model its weights belong to,
        together with the field values its :data:`~online_ctr.features.AUTO`
        crosses are chosen by (:attr:`audience`).
    """

    #: examples learned by :meth:`flush_unscored` (class default: older pickles)
    unscored = 0
    #: when a list, every scored example appends ``(label_id, p, y)`` to it, so a
    #: caller comparing two learners on the same stream can pair their scores
    #: (class default: older pickles, and learners nobody compares)
    journal: list[tuple[str, float, bool]] | None = None

    def __init__(
        self,
        model: CtrModel,
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
        #: the segment field values learned so far, for the spec's "auto" crosses
        self.audience = AudienceFields(spec.auto_max_values)
        self.metrics = ProgressiveMetrics()
        self.learned = 0
        self.duplicates = 0
        #: the slowest partition's watermark (reported; each partition releases on its own)
        self.watermark = float("-inf")
        self._partition_watermarks: dict[str, float] = {}
        #: per partition, examples waiting for their window to close
        self._buffers: dict[str, list[_Pending]] = {}
        #: examples buffered by a version that kept one buffer for all partitions
        self._legacy: list[_Pending] = []
        self._seq = 0
        self._seen: set[str] = set()
        #: per partition, (expiry in label time, label_id) of remembered ids
        self._seen_expiry: dict[str, list[tuple[float, str]]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load pickles of every version: older ones had one buffer and one expiry heap,
        and no ``audience`` (their specs name their crosses, so it stays unused)."""
        state.setdefault("audience", AudienceFields())
        if "_buffer" in state:
            state["_legacy"] = state.pop("_buffer")
            state["_buffers"] = {}
            state["_seen_expiry"] = {"": state.pop("_seen_expiry")}
        self.__dict__.update(state)

    @property
    def buffered(self) -> int:
        """Examples waiting in the reorder buffer."""
        return len(self._legacy) + sum(len(b) for b in self._buffers.values())

    def submit(
        self,
        labelled: LabelledImpression,
        source: str = "",
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
    ) -> int:
        """Buffer one example; learn every example now due. Returns how many were learned.

        ``source`` names the labelled partition, which carries exactly one join
        partition's labels in the order the join decided them: an example is
        due once *its own* partition's watermark has passed its window close,
        since by then every negative of that partition up to that time has
        been read. Partitions do not wait for each other: one read ahead of
        another learns ahead by that much, with complete windows on both, so
        the metrics stay honest and the buffer stays bounded by a window per
        partition however unevenly a backlog is read.
        """
        self._move_watermark(source, labelled.labelled_at)
        if labelled.label_id in self._seen:
            self.duplicates += 1
        else:
            self._seen.add(labelled.label_id)
            expiry = labelled.labelled_at + self.dedup_horizon_s
            heapq.heappush(self._seen_expiry.setdefault(source, []), (expiry, labelled.label_id))
            self._seq += 1
            due = labelled.ts + self.window_s
            heapq.heappush(
                self._buffers.setdefault(source, []),
                (due, self._seq, labelled, image_embedding, title_embedding),
            )
        return self._release(source)

    def advance(self, source: str, watermark: float | None) -> int:
        """The join says ``source``'s watermark reached ``watermark``; learn what is due.

        ``None`` (a partition that has seen no event) says nothing.
        """
        if watermark is None:
            return 0
        self._move_watermark(source, watermark)
        return self._release(source)

    def flush(self) -> int:
        """Learn and score everything still buffered: only at the end of a finished stream.

        Scored is honest only when every label of the buffered windows is
        known (an offline stream read to its end); a live stream that merely
        went quiet must use :meth:`flush_unscored`.
        """
        return self._drain(scored=True)

    def flush_unscored(self) -> int:
        """Learn everything buffered without recording it in the metrics.

        For a live stream whose watermark has stopped: those windows may
        still be open, so scoring them now would let positives be judged
        before the negatives of their time and flatter the model.
        """
        n = self._drain(scored=False)
        self.unscored += n
        return n

    def swap_buffered_images(self, images: Mapping[str, Embedding] | None = None) -> None:
        """Give every buffered example the image embedding ``images`` has for its label id.

        For a copy that will learn a new encoder version's embeddings: what
        was buffered was embedded with the old one. An example ``images``
        does not cover (or all, when it is None) keeps no image embedding;
        they all stay buffered, in order.
        """
        found = images or {}
        self._legacy = [(d, s, lab, found.get(lab.label_id), t) for d, s, lab, _, t in self._legacy]
        self._buffers = {
            source: [(d, s, lab, found.get(lab.label_id), t) for d, s, lab, _, t in buffer]
            for source, buffer in self._buffers.items()
        }

    def _move_watermark(self, source: str, watermark: float) -> None:
        previous = self._partition_watermarks.get(source, float("-inf"))
        self._partition_watermarks[source] = max(previous, watermark)
        self.watermark = min(self._partition_watermarks.values())
        expiry = self._seen_expiry.get(source, [])
        while expiry and expiry[0][0] < self._partition_watermarks[source]:
            _, label_id = heapq.heappop(expiry)
            self._seen.discard(label_id)
        legacy = self._seen_expiry.get("", [])
        while source and legacy and legacy[0][0] < self.watermark:
            self._seen.discard(heapq.heappop(legacy)[1])

    def _release(self, source: str) -> int:
        n = 0
        buffer = self._buffers.get(source, [])
        up_to = self._partition_watermarks.get(source, float("-inf"))
        while buffer and buffer[0][0] <= up_to:
            _, _, labelled, image, title = heapq.heappop(buffer)
            self.predict_then_learn(labelled, image, title)
            n += 1
        while self._legacy and self._legacy[0][0] <= self.watermark:
            _, _, labelled, image, title = heapq.heappop(self._legacy)
            self.predict_then_learn(labelled, image, title)
            n += 1
        return n

    def _drain(self, scored: bool) -> int:
        """Learn every buffered example, all partitions merged in window-close order."""
        pending = sorted(
            [*self._legacy, *(e for b in self._buffers.values() for e in b)],
            key=lambda e: (e[0], e[1]),
        )
        self._legacy = []
        self._buffers = {}
        for _, _, labelled, image, title in pending:
            self.predict_then_learn(labelled, image, title, scored=scored)
        return len(pending)

    def features(
        self,
        impression: Impression,
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
    ) -> dict[str, float]:
        """The feature dict this learner's model sees for ``impression``."""
        return featurize(
            impression,
            image_embedding,
            title_embedding,
            spec=self.spec,
            auto_fields=self.audience.crossed,
        )

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

    def predict_then_learn(
        self,
        labelled: LabelledImpression,
        image_embedding: Embedding = None,
        title_embedding: Embedding = None,
        scored: bool = True,
    ) -> float:
        """Score, record, then learn one example; returns the score made before learning.

        ``scored=False`` learns without recording the score in the metrics.
        The segment's values are counted first (they say nothing of the
        label), so an example is scored and learned with the same features.
        """
        if self.spec.auto:
            self.audience.observe(labelled.segment.as_dict())
        x = self.features(labelled, image_embedding, title_embedding)
        p = self.predict_features(x)
        y = self.weighting.label(labelled)
        if scored:
            self.metrics.update(p, y, labelled.segment.key())
            if self.journal is not None:
                self.journal.append((labelled.label_id, p, y))
        self.model.learn_one(x, y, w=self.weighting.weight(p, y))
        self.learned += 1
        return p
