"""A read-only view of a learned model for serving: the same predictions, computed faster.

FTRL keeps per-coordinate state (``z``, ``n``) and derives each weight from
it on every prediction (a square root, a sign and a division per feature);
that is right for a learner, which changes after every example, and
wasteful for the scoring API, which serves one snapshot for seconds to
minutes and never learns. :func:`frozen_predictor` turns a learner into a
function of a feature dict whose weights were derived once, when the
snapshot was loaded; ``bench/bench_api.py`` measures what it buys. Models
without a closed linear form (River's pipelines, the Bayesian one) are
served through their own ``predict_proba_one``.

:func:`batch_predictor` scores the candidates of one request together. The
features of a candidate are the sum of three parts (:mod:`online_ctr.features`):
what the segment and the hour give every candidate, the sparse one-hots of
the candidate's ids, title and position, and its embeddings. A linear
model's logit splits the same way, so :class:`FrozenLinear` sums the
segment's weights once per segment and hour, sums each candidate's few
sparse weights (ids, title words and their crosses) once per crossed segment
fields, remembering both (a ranking service asks about the same catalogue for
the same audiences again and again; the memos are bounded and belong to one
snapshot's view, so they cannot go stale), and takes the embeddings' part as
one matrix product: each dimension's weight plus its crosses with the
segment, summed once, times the stacked vectors. No feature dict is built. Only
the order of the additions differs from :meth:`~online_ctr.learner.Learner.predict`,
so the probabilities agree to within rounding (about 1e-16; the tests hold
them to 1e-12).

The view copies the weights, so the learner may go on learning (in the
worker) without changing what the view predicts, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from online_ctr.features import (
    IMAGE_PREFIX,
    TITLE_PREFIX,
    CandidateFields,
    embedding_feature_names,
    id_features,
    position_features,
    segment_features,
    word_features,
)
from online_ctr.learner import Embedding, Learner
from online_ctr.models.ftrl import MAX_LOGIT, sigmoid
from online_ctr.models.protocol import LinearCtrModel
from schemas.events import Impression, Segment

__all__ = [
    "BatchPredictor",
    "FrozenLinear",
    "Predictor",
    "batch_predictor",
    "frozen_predictor",
    "per_candidate_predictor",
]

#: click probability of a feature dict
Predictor = Callable[[dict[str, float]], float]
#: click probabilities of candidates shown to ``segment`` at ``ts``, with each
#: candidate's image and title embeddings (``None``: without)
BatchPredictor = Callable[
    [Segment, float, Sequence[CandidateFields], Sequence[Embedding], Sequence[Embedding]],
    list[float],
]

#: segments (with hours) whose shared weights a view remembers before starting afresh
SEGMENT_MEMO = 4096
#: candidates' sparse logits a view remembers before starting afresh (~200 bytes each)
CONTENT_MEMO = 100_000

_Vector = npt.NDArray[np.float64]


@dataclass
class _SegmentPart:
    """What a view has summed for one segment at one hour of day."""

    logit: float
    id_crossed: tuple[str, ...]
    token_crossed: tuple[str, ...]
    image_crossed: tuple[str, ...]
    title_crossed: tuple[str, ...]
    crosses: int
    #: per (prefix, dimensions): each dimension's weight plus its crosses' weights
    embedding_weights: dict[tuple[str, int], _Vector] = field(default_factory=dict)


class FrozenLinear:
    """A linear model's predictions from weights derived once, for one candidate or many.

    Parameters
    ----------
    learner
        A learner whose model is a :class:`~online_ctr.models.protocol.LinearCtrModel`;
        its weights, intercept, feature spec and content crosses are copied.
    """

    def __init__(self, learner: Learner) -> None:
        model = learner.model
        if not isinstance(model, LinearCtrModel):
            raise TypeError(f"{type(model).__name__} is not a linear model")
        self.weights: dict[Any, float] = dict(model.weights)
        self.intercept = model.intercept
        self.spec = learner.spec
        self.auto_fields = frozenset(learner.audience.crossed)
        self._segments: dict[tuple[tuple[tuple[str, str], ...], int], _SegmentPart] = {}
        self._positions: dict[int, float] = {}
        #: per crossed segment one-hots, each candidate's sparse logit by (item, variant, title)
        self._content: dict[tuple[tuple[str, ...], ...], dict[tuple[str, str, str], float]] = {}
        self._remembered = 0

    def predict(self, x: dict[str, float]) -> float:
        """Click probability of a feature dict (``learner.predict_features``)."""
        logit = self.intercept
        get = self.weights.get
        for feature, value in x.items():
            if value:
                w = get(feature)
                if w is not None:
                    logit += w * value
        return sigmoid(logit)

    def predict_many(
        self,
        segment: Segment,
        ts: float,
        candidates: Sequence[CandidateFields],
        images: Sequence[Embedding],
        titles: Sequence[Embedding],
    ) -> list[float]:
        """Click probability of each candidate shown to ``segment`` at ``ts``.

        ``images`` and ``titles`` hold each candidate's embeddings (``None``:
        scored without), as :meth:`~online_ctr.learner.Learner.predict` takes them.
        """
        part = self._segment(segment, ts)
        crossed = (part.id_crossed, part.token_crossed)
        if self._remembered > CONTENT_MEMO:
            self._content.clear()
            self._remembered = 0
        memo = self._content.get(crossed)
        if memo is None:
            memo = self._content[crossed] = {}
        positions = self._positions
        sparse = []
        for c in candidates:
            key = (c.item_id, c.variant, c.title)
            s = memo.get(key)
            if s is None:
                s = memo[key] = self._sparse(c, *crossed)
                self._remembered += 1
            position = positions.get(c.position)
            if position is None:
                position = positions[c.position] = self._position(c.position)
            sparse.append(s + position)
        logits = np.asarray(sparse, dtype=np.float64) + (self.intercept + part.logit)
        logits += self._embeddings(IMAGE_PREFIX, images, part, part.image_crossed)
        logits += self._embeddings(TITLE_PREFIX, titles, part, part.title_crossed)
        np.clip(logits, -MAX_LOGIT, MAX_LOGIT, out=logits)
        probabilities: list[float] = (1.0 / (1.0 + np.exp(-logits))).tolist()
        return probabilities

    def _segment(self, segment: Segment, ts: float) -> _SegmentPart:
        fields = segment.as_dict()
        hour = int(ts // 3600) % 24
        key = (tuple(sorted(fields.items())), hour)
        part = self._segments.get(key)
        if part is not None:
            return part
        seg = segment_features(fields, ts, self.spec, self.auto_fields)
        get = self.weights.get
        logit = 0.0
        for name, value in seg.shared:
            if value:
                logit += get(name, 0.0) * value
        part = _SegmentPart(
            logit,
            seg.id_crossed,
            seg.token_crossed,
            seg.image_crossed,
            seg.title_crossed,
            seg.embedding_crosses,
        )
        if len(self._segments) >= SEGMENT_MEMO:
            self._segments.clear()
        self._segments[key] = part
        return part

    def _sparse(
        self, c: CandidateFields, id_crossed: tuple[str, ...], token_crossed: tuple[str, ...]
    ) -> float:
        """The logit of a candidate's ids and title words, with their crosses."""
        get = self.weights.get
        item, variant = id_features(c.item_id, c.variant)
        s = get(item, 0.0) + get(variant, 0.0)
        for seg in id_crossed:
            s += get(f"{seg}&{item}", 0.0) + get(f"{seg}&{variant}", 0.0)
        for word in word_features(c.title):
            s += get(word, 0.0)
            for seg in token_crossed:
                s += get(f"{seg}&{word}", 0.0)
        return s

    def _position(self, position: int) -> float:
        get = self.weights.get
        return sum(get(name, 0.0) * value for name, value in position_features(position) if value)

    def _embeddings(
        self,
        prefix: str,
        vectors: Sequence[Embedding],
        part: _SegmentPart,
        crossed: tuple[str, ...],
    ) -> _Vector | float:
        """Each candidate's logit from one embedding (0 for a candidate without it)."""
        rows_by_dims: dict[int, list[int]] = {}
        for i, vector in enumerate(vectors):
            if vector is not None and len(vector):
                rows_by_dims.setdefault(len(vector), []).append(i)
        if not rows_by_dims:
            return 0.0
        out = np.zeros(len(vectors))
        get = self.weights.get
        for dims, rows in rows_by_dims.items():
            weights = part.embedding_weights.get((prefix, dims))
            if weights is None:
                names = embedding_feature_names(prefix, dims, crossed, part.crosses)
                weights = np.array([sum(get(n, 0.0) for n in dim) for dim in names])
                part.embedding_weights[(prefix, dims)] = weights
            matrix = np.array([vectors[i] for i in rows], dtype=np.float64)
            # a non-finite value is no feature at all (featurize drops it)
            matrix[~np.isfinite(matrix)] = 0.0
            # row by row, so equal candidates get equal scores (a tie keeps request order)
            out[rows] = (matrix * weights).sum(axis=1)
        return out


def frozen_predictor(learner: Learner) -> Predictor:
    """``learner.predict_features``, with a linear model's weights derived once.

    A :class:`~online_ctr.models.protocol.LinearCtrModel` promises that its weights
    and intercept predict exactly what it does; any other model is served
    through its own ``predict_proba_one``.
    """
    if not isinstance(learner.model, LinearCtrModel):
        return learner.predict_features
    return FrozenLinear(learner).predict


def per_candidate_predictor(learner: Learner) -> BatchPredictor:
    """Candidates scored one at a time by ``learner.predict``: for models without a linear form.

    Also the reference the batch path is tested and benchmarked against.
    """

    def predict_many(
        segment: Segment,
        ts: float,
        candidates: Sequence[CandidateFields],
        images: Sequence[Embedding],
        titles: Sequence[Embedding],
    ) -> list[float]:
        return [
            learner.predict(
                Impression.model_construct(
                    event_id=f"score-{i}",
                    impression_id=f"score-{i}",
                    ts=ts,
                    segment=segment,
                    item_id=c.item_id,
                    image_id="",  # no feature reads it: the embeddings come apart
                    variant=c.variant,
                    title=c.title,
                    position=c.position,
                ),
                image,
                title,
            )
            for i, (c, image, title) in enumerate(zip(candidates, images, titles, strict=True))
        ]

    return predict_many


def batch_predictor(learner: Learner) -> BatchPredictor:
    """Many candidates of one segment at once: :class:`FrozenLinear` for a linear model."""
    if isinstance(learner.model, LinearCtrModel):
        return FrozenLinear(learner).predict_many
    return per_candidate_predictor(learner)
