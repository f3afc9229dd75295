"""The examples a projection head is fine-tuned on: one per impression, images shared.

Its own module because two sides meet here: the job's data gathering
(:mod:`bertctr.finetune_data`: labelled topic, image store, replayed
offsets) builds a :class:`TrainingSet`, and the trainer
(:mod:`encoder_server.training.head_trainer`) reads one; neither needs the other.
Validation happens once, at construction, so the trainer can trust shapes,
dtypes and finiteness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from encoder_server.projection import FEATURE_KINDS

__all__ = ["TrainingSet"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainingSet:
    """Examples for :func:`train_head`, one per impression.

    Attributes
    ----------
    features:
        float32 pooled backbone features: ``[N, D]`` one row per example, or
        ``[U, D]`` one row per unique image when ``image_index`` is given (an
        image is shown many times; the index form keeps one copy). All-zero
        rows are failed images: their embedding is zero, as when served.
    segments:
        ``[N]`` integers, the audience group of each example (e.g. a hash of
        the crossed segment fields). Any integer values; groups not seen in
        the training split get only the shared coefficients.
    offsets:
        ``[N]`` the current online model's logit for the example.
    clicks:
        ``[N]`` bool, whether the impression was clicked.
    ts:
        ``[N]`` event time (any monotone unit); splits are by time.
    image_index:
        ``[N]`` row of ``features`` for each example, or ``None`` when
        ``features`` has one row per example.
    weights:
        ``[N]`` non-negative example weights (importance or recency
        weights); ``None`` for all ones. Losses and metrics are weighted.
    feature_kind:
        Which backbone features these are (a
        :data:`~encoder_server.projection.FEATURE_KINDS` name); the trained
        head records it so a server extracts the same ones.
    """

    features: F32
    segments: npt.NDArray[np.integer[Any]]
    offsets: F64
    clicks: npt.NDArray[np.bool_]
    ts: F64
    image_index: I64 | None = None
    weights: F64 | None = None
    feature_kind: str = "multiscale"

    def __post_init__(self) -> None:
        features = np.ascontiguousarray(self.features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
            raise ValueError(f"features must be [rows, D], got shape {features.shape}")
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN or infinite values")
        clicks = np.asarray(self.clicks)
        if clicks.dtype != np.bool_:
            if not np.isin(clicks, (0, 1)).all():
                raise ValueError("clicks must be booleans (or 0/1)")
            clicks = clicks.astype(np.bool_)
        n = clicks.shape[0] if clicks.ndim == 1 else -1
        if n < 1:
            raise ValueError(f"clicks must be a non-empty [N] vector, got shape {clicks.shape}")
        segments = np.asarray(self.segments)
        if not np.issubdtype(segments.dtype, np.integer):
            raise ValueError(f"segments must be integers, got dtype {segments.dtype}")
        offsets = np.asarray(self.offsets, dtype=np.float64)
        ts = np.asarray(self.ts, dtype=np.float64)
        for name, arr in (("segments", segments), ("offsets", offsets), ("ts", ts)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must be [N] = [{n}], got shape {arr.shape}")
        if not (np.isfinite(offsets).all() and np.isfinite(ts).all()):
            raise ValueError("offsets and ts must be finite")
        index = None
        if self.image_index is not None:
            index = np.asarray(self.image_index)
            if not np.issubdtype(index.dtype, np.integer) or index.shape != (n,):
                raise ValueError(f"image_index must be [N] = [{n}] integers")
            index = index.astype(np.int64)
            if index.min() < 0 or index.max() >= features.shape[0]:
                raise ValueError(f"image_index must lie in [0, {features.shape[0]})")
        elif features.shape[0] != n:
            raise ValueError(
                f"features has {features.shape[0]} rows for {n} examples; "
                "pass image_index to share rows between examples"
            )
        weights = None
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (n,) or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError(f"weights must be [N] = [{n}] finite non-negative numbers")
        if self.feature_kind not in FEATURE_KINDS:
            raise ValueError(f"feature_kind must be one of {FEATURE_KINDS}")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "clicks", clicks)
        object.__setattr__(self, "ts", ts)
        object.__setattr__(self, "image_index", index)
        object.__setattr__(self, "weights", weights)

    @property
    def n_examples(self) -> int:
        """Number of examples (impressions)."""
        return int(self.clicks.shape[0])

    @property
    def d_in(self) -> int:
        """Backbone feature width ``D``."""
        return int(self.features.shape[1])

    def rows(self) -> I64:
        """Row of :attr:`features` for each example."""
        if self.image_index is not None:
            return self.image_index
        return np.arange(self.n_examples, dtype=np.int64)

    def example_weights(self) -> F64:
        """Weight of each example (ones when none were given)."""
        if self.weights is not None:
            return self.weights
        return np.ones(self.n_examples, dtype=np.float64)
