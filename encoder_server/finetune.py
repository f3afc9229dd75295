"""Fine-tune a projection head on clicks: teach the embedding what the CTR model misses.

The online CTR model learns on a handful of embedding dimensions (8, say)
crossed with audience segments. A PCA head (:func:`~encoder_server.projection.fit_pca`)
chooses those dimensions by *variance*: it keeps how images differ most, which
need not be what moves clicks. A cue that drives clicks but varies little
across the catalogue (a thin banner, a colour cast, a badge) lands in a
discarded component, and no amount of online learning can recover it: the
learner only ever sees the 8 numbers the head kept.

This module trains a new head on the clicks themselves, as Alibaba's DICM
does in production: the CNN stays frozen (its pooled "multiscale" features
are inputs, computed once), and only the linear layer on top is trained,
jointly with a CTR objective. The model, for example ``i`` of image ``x_i``
and audience group ``g_i``:

    logit_i = offset_i + b[g] + (a0 + a[g]) . e(x_i)
    e(x)    = normalise(W . whiten(standardise(x)) + beta)

(``whiten``: coordinates in the top principal directions, see below.)

* ``offset_i`` is the current online model's logit for that example: what
  the system already knows (item, position, segment, the current embedding).
  Training on top of it fits only *what the current model gets wrong*, so the
  head spends its few dimensions on what the features carry and the online
  model lacks, not on re-learning the item prior;
* ``a0 + a[g]`` are the coefficients of the embedding for audience group
  ``g``: the same image property can raise clicks in one segment and lower
  them in another, which is what the online model's segment crosses learn.
  ``a0`` is shared, ``a[g]`` (and the per-group bias ``b[g]``) are pulled to
  zero by ``weight_decay``, so a small group borrows the shared effect;
* ``e`` is exactly what :class:`~encoder_server.projection.Projection` serves:
  a linear map and an L2 normalisation. ``beta`` (a learnt shift) matters
  because of that normalisation: without it, a head that found one
  click-relevant direction would pass only its *sign* (one live dimension
  normalises to +-1); with a shift the other dimensions give the norm a
  steady reference and magnitudes survive. The shift folds into the
  projection's ``mean`` (``mean' = mean - pinv(C) beta``), so the served head
  is still ``(x - mean') @ C.T``, normalised: same class, same ``.npz``, same
  Triton model, only a new version.

Only ``W`` and ``beta`` are published. ``a`` and ``b`` are scaffolding: the
online model relearns its own coefficients for the new dimensions (a new head
is a new encoder version, a new cache namespace, a fresh set of crossed
weights). The held-out "after" metric is therefore what the online model
*could* reach with this head once it has relearnt them, not what it reaches
the minute the head ships.

Why the splits are in time, and three of them: the job's claim is "better on
later traffic", so the last ``holdout`` share of the examples by event time is
held out and never seen; before it, the last ``validation`` share picks the
epoch (early stopping); the rest trains. Early stopping on the held-out set
itself would choose the epoch that looks best there and then report that
same number: on clicks that carry no signal, that picks a lucky epoch and
publishes noise. The held-out numbers are compared against two references:

* ``before``: the offset alone, the online model as it is;
* ``recalibrated``: the offset plus the per-group bias ``b[g]`` fitted on the
  same training split with no head at all. A shift in base rate since the
  offsets were computed (or labels with no relation to the offset) makes
  ``b[g]`` alone beat ``before``; a head must beat *both* to be credited
  (:func:`should_publish`), since recalibration is not the head's doing.

Why the map is trained in a whitened principal subspace: at D = 3120, ``W``
has 25k entries and a training window holds a few thousand distinct images.
Trained on the raw standardised features, every direction of that space
gets Adam steps of the same size, most of them fitting noise; on synthetic
sets at D = 3120 (5k images, 30k impressions) the validation loss rose
from the first epoch on and nothing was learnt, while the same set at
D = 64 learnt fine. So ``W`` acts on ``p = whiten(top-K principal
directions of standardise(x))`` (``K = subspace``, 256 by default): the
noise has ``K`` directions to live in rather than ``D``, and whitening gives
every kept direction unit variance, so a click cue in a low-variance
direction (exactly what a PCA head drops) is as easy to reach as a dominant
one. On the same synthetic set the whitened head then cut held-out log loss
from 0.440 (recalibrated offsets) to 0.414-0.416 (random or PCA start),
against 0.389 for the true logits, in under 3 s. Directions beyond the top
``K`` are given up: with a few thousand images they could only be fitted to
noise. The whole chain (standardise,
whiten, ``W``, shift) is still one linear map, so it folds into a
:class:`~encoder_server.projection.Projection` like any other.

Determinism: the initial ``W`` (when random), the principal subspace's
random start and the minibatch order come from
``numpy.random.default_rng(seed)``; nothing draws from torch's global
generator, so a caller's torch seed is neither needed nor disturbed. Float
sums on a CPU depend on how work is split between threads, so training runs
single-threaded by default (``threads=1``) and torch's thread count is
restored afterwards: the same seed and data give bit-identical components.

Step sizes are per parameter group because the scales differ: the head's
coefficients are O(1), while an entry of ``W`` is O(1/sqrt(K)) once the
initial ``W`` is scaled so that ``W . p + beta`` has unit RMS. ``W``'s
learning rate is ``lr`` times the RMS of its initial entries, so one Adam
step changes the embedding by about ``lr`` of its size whatever ``K`` is.

Cost: the ``D``-wide work is done once, per distinct image (standardisation
statistics, the covariance of at most 20k images, each image's ``K``
coordinates); the epochs then read ``K`` floats per example. Examples index
unique images (``TrainingSet.image_index``), so a million impressions of
50k images hold 50k feature rows and 50k x ``K`` coordinates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from encoder_server.projection import FEATURE_KINDS, Projection

__all__ = [
    "EpochLoss",
    "FinetuneResult",
    "HeadParameters",
    "Metrics",
    "SplitStats",
    "TrainingSet",
    "auc",
    "log_loss",
    "should_publish",
    "train_head",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: feature rows per chunk in the D-wide passes (a few MiB each at D = 3120)
_ROWS = 1024
#: examples per chunk when evaluating a split (K-wide, cheap)
_CHUNK = 65_536
#: at most this many training images estimate the principal subspace
_PCA_ROWS = 20_000
#: randomised subspace iteration: extra directions and power steps (Halko et al. 2011)
_OVERSAMPLE = 16
_POWER_STEPS = 4
#: norms below this are "no embedding" (an all-zero feature row)
_TINY = 1e-24


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


@dataclass(frozen=True)
class Metrics:
    """Weighted log loss (nats per example) and AUC of one scorer on one split."""

    log_loss: float
    auc: float


@dataclass(frozen=True)
class SplitStats:
    """What one time split holds: examples, clicks, distinct images, time range."""

    examples: int
    clicks: int
    images: int
    ts_start: float
    ts_end: float


@dataclass(frozen=True)
class EpochLoss:
    """Log loss after one epoch (epoch 0: before training).

    ``train`` is the mean over the epoch's minibatches as they were trained
    (the cheap, standard reading; at epoch 0 a full pass), ``validation``
    and ``holdout`` a full pass at the end of the epoch. None includes the
    weight-decay penalty.
    """

    epoch: int
    train: float
    validation: float
    holdout: float


@dataclass(frozen=True)
class HeadParameters:
    """The trained model in its training-time form (for inspection and checks).

    ``embed`` is the function training optimised, step for step; the
    published :class:`~encoder_server.projection.Projection` folds it into
    ``(x - mean') @ C.T`` and must agree with it (the unit tests check).

    Attributes
    ----------
    mean, scale:
        Standardisation of the features, from the training split's images.
    basis:
        ``[D, K]``: the top ``K`` principal directions of the standardised
        features, each divided by its standard deviation (whitening), so
        the training coordinates ``standardise(x) @ basis`` have identity
        covariance.
    weight, shift:
        ``[dim, K]`` and ``[dim]``: the trained map in those coordinates.
    shared, segment_ids, segment_coef, segment_bias:
        The scaffolding coefficients ``a0``, the segment value of each row
        of ``a[g]`` and ``b[g]``, and those rows (not published).
    """

    mean: F64
    scale: F64
    basis: F64
    weight: F32
    shift: F32
    shared: F32
    segment_ids: npt.NDArray[np.integer[Any]]
    segment_coef: F32
    segment_bias: F32

    def embed(self, features: npt.NDArray[np.floating[Any]]) -> F32:
        """``normalise(W . whiten(standardise(x)) + beta)``; all-zero rows give zero rows."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        standardise = _Standardise(self.mean, self.scale, self.basis)
        with torch.no_grad():
            out = _embed(
                standardise.coordinates(torch.from_numpy(x)),
                torch.from_numpy(x.any(axis=1)),
                torch.from_numpy(self.weight),
                torch.from_numpy(self.shift),
            )
        return out.numpy()


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`train_head` learnt and how it did on later traffic.

    Attributes
    ----------
    projection:
        The new head, ready to save and serve.
    head:
        The trained parameters before folding (see :class:`HeadParameters`).
    curve:
        Log loss per epoch, epoch 0 first.
    best_epoch:
        The epoch whose parameters were kept (lowest validation loss).
    splits:
        ``"train"``, ``"validation"``, ``"holdout"``: what each held.
    before, recalibrated, after:
        Held-out metrics of the offset alone, of the offset with per-group
        biases fitted on the training split, and of the full model.
    reference:
        ``"before"`` or ``"recalibrated"``, whichever has the lower held-out
        log loss: the bar the head is measured against.
    improvement, improvement_se:
        Held-out mean of the paired per-example log-loss difference,
        reference minus after (nats; > 0: the head helps), and its standard
        error.
    seconds, peak_rss_bytes:
        Wall time of :func:`train_head` and the process's peak resident
        memory when it returned (``getrusage``: a high-water mark of the
        whole process, so it includes whatever the caller held before).
    settings:
        The arguments the head was trained with.
    """

    projection: Projection
    head: HeadParameters
    curve: tuple[EpochLoss, ...]
    best_epoch: int
    splits: dict[str, SplitStats]
    before: Metrics
    recalibrated: Metrics
    after: Metrics
    reference: str
    improvement: float
    improvement_se: float
    seconds: float
    peak_rss_bytes: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready (NaN becomes ``None``)."""

        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        def metrics(m: Metrics) -> dict[str, float | None]:
            return {"log_loss": clean(m.log_loss), "auc": clean(m.auc)}

        return {
            "projection": {
                "kind": self.projection.kind,
                "version": self.projection.version,
                "features": self.projection.features,
                "d_in": self.projection.d_in,
                "d_out": self.projection.d_out,
                "note": self.projection.note,
            },
            "settings": dict(self.settings),
            "segments": int(self.head.segment_ids.shape[0]),
            "splits": {
                name: {
                    "examples": s.examples,
                    "clicks": s.clicks,
                    "images": s.images,
                    "ts_start": s.ts_start,
                    "ts_end": s.ts_end,
                }
                for name, s in self.splits.items()
            },
            "holdout": {
                "before": metrics(self.before),
                "recalibrated": metrics(self.recalibrated),
                "after": metrics(self.after),
                "reference": self.reference,
                "improvement": clean(self.improvement),
                "improvement_se": clean(self.improvement_se),
            },
            "best_epoch": self.best_epoch,
            "curve": [
                {
                    "epoch": e.epoch,
                    "train": clean(e.train),
                    "validation": clean(e.validation),
                    "holdout": clean(e.holdout),
                }
                for e in self.curve
            ],
            "seconds": self.seconds,
            "peak_rss_bytes": self.peak_rss_bytes,
        }


def log_loss(logits: F64, clicks: npt.NDArray[np.bool_], weights: F64 | None = None) -> float:
    """Weighted mean log loss (nats) of ``logits``: computed on logits, so never ``log(0)``."""
    per = _per_example_loss(logits, clicks)
    return float(np.average(per, weights=weights))


def auc(scores: F64, clicks: npt.NDArray[np.bool_], weights: F64 | None = None) -> float:
    """Weighted ROC AUC, ties counting one half; NaN when a class is absent.

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    y = np.asarray(clicks, dtype=bool)
    w = np.ones(y.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    values, inverse = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    pos = np.bincount(inverse, weights=w * y, minlength=values.shape[0])
    neg = np.bincount(inverse, weights=w * ~y, minlength=values.shape[0])
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def should_publish(
    result: FinetuneResult,
    min_clicks: int,
    min_improvement: float = 0.0,
    *,
    z: float = 2.0,
) -> tuple[bool, str]:
    """Whether a fine-tuned head has earned a new encoder version, and why.

    A new version is not free: every embedding changes, the cache namespace
    starts cold and the online model relearns its crossed weights. So the
    head must (1) have been trained on at least ``min_clicks`` clicks (the
    training split's), (2) have improved on its starting point on the
    validation split at all (best epoch > 0: otherwise it *is* the starting
    point, and any held-out "gain" is float rounding), (3) lower the
    held-out log loss below the better of ``before`` and ``recalibrated`` by
    more than ``min_improvement`` nats per example, and (4) by more than
    ``z`` standard errors of the paired per-example difference: the held-out
    set is one draw of later traffic, and an improvement inside its noise is
    not evidence.
    """
    clicks = result.splits["train"].clicks
    if clicks < min_clicks:
        return False, f"only {clicks} clicks in the training split; at least {min_clicks} needed"
    if result.best_epoch == 0:
        return False, (
            "the head never beat its starting point on the validation split "
            f"(best epoch 0 of {len(result.curve) - 1})"
        )
    ref = result.before if result.reference == "before" else result.recalibrated
    gain, se = result.improvement, result.improvement_se
    numbers = (
        f"held-out log loss {result.after.log_loss:.5f} with the head vs "
        f"{ref.log_loss:.5f} {result.reference} (offset only: {result.before.log_loss:.5f})"
    )
    if not gain > min_improvement:
        return False, f"no improvement: {numbers}; gain {gain:.5f} <= {min_improvement:.5f}"
    if not gain > z * se:
        return False, f"improvement within noise: gain {gain:.5f} <= {z:g} x SE {se:.5f}; {numbers}"
    sigmas = gain / se if se > 0 else math.inf
    return True, f"publish: {numbers}; gain {gain:.5f} nats/example ({sigmas:.1f} SE)"


def train_head(
    data: TrainingSet,
    dim: int | None = None,
    seed: int = 0,
    *,
    epochs: int = 30,
    lr: float = 0.02,
    weight_decay: float = 1.0,
    holdout: float = 0.2,
    validation: float = 0.1,
    batch_size: int = 512,
    patience: int = 5,
    subspace: int = 256,
    init: Projection | None = None,
    freeze_projection: bool = False,
    version: int | None = None,
    threads: int | None = 1,
    progress: bool = False,
) -> FinetuneResult:
    """Train a projection head on click log loss over the online model's offsets.

    Parameters
    ----------
    data:
        The examples (see :class:`TrainingSet`).
    dim:
        Embedding width; ``None``: ``init``'s, else 8.
    seed:
        Seeds the random initial ``W``, the principal subspace's random
        start and the minibatch order.
    epochs, patience:
        At most ``epochs`` passes; stop after ``patience`` epochs without a
        lower validation loss and keep the best epoch's parameters.
    lr:
        Adam step size (``W``'s is scaled, see the module docstring).
    weight_decay:
        Precision of the Gaussian prior pulling the per-group coefficients
        ``a[g]`` and biases ``b[g]`` to zero: ``weight_decay * (|a[g]|^2 +
        b[g]^2)`` is added to the training split's *summed* log loss, so it
        holds a small group to the shared effect and fades for a big one.
    holdout, validation:
        Shares of the examples, the latest by ``ts``, held out for the final
        metrics and for early stopping (see the module docstring).
    batch_size:
        Examples per Adam step.
    subspace:
        Train within the top ``subspace`` principal directions of the
        standardised features, whitened (see the module docstring).
    init:
        Head to start from (the one serving now, e.g. a PCA head), mapped
        into the training coordinates (exactly when it lies in the
        subspace, as a PCA head of up to ``subspace`` components does);
        ``None``: a random Gaussian map.
    freeze_projection:
        Keep ``init`` (or the random map) fixed and train only the per-group
        coefficients: what the online model can get out of the current head,
        the baseline that shows what fine-tuning adds.
    version:
        The new head's version; ``None``: ``init.version + 1``, else 1.
    threads:
        torch threads during training (restored after); ``None`` leaves
        torch's setting alone at the cost of bit-exact reproducibility.
    progress:
        Show a tqdm bar over epochs.

    Raises
    ------
    ValueError
        On inconsistent shapes, a split with no examples, or a training
        split with no clicks.
    """
    started = time.perf_counter()
    if init is not None:
        dim = init.d_out if dim is None else dim
        if init.d_out != dim or init.d_in != data.d_in:
            raise ValueError(
                f"init maps {init.d_in}->{init.d_out}, the training needs {data.d_in}->{dim}"
            )
        if init.features != data.feature_kind:
            raise ValueError(f"init projects {init.features!r}, data are {data.feature_kind!r}")
    dim = 8 if dim is None else dim
    if min(dim, epochs, batch_size, patience, subspace) < 1 or lr <= 0 or weight_decay < 0:
        raise ValueError("dim, epochs, batch_size, patience, subspace and lr must be positive")
    if not (0 < holdout < 1 and 0 < validation < 1 and holdout + validation < 1):
        raise ValueError("holdout and validation must be shares in (0, 1) summing below 1")
    rng = np.random.default_rng(seed)
    with _torch_threads(threads):
        fitted = _Trainer(data, dim, rng, holdout, validation, weight_decay, subspace).fit(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            patience=patience,
            init=init,
            freeze=freeze_projection,
            progress=progress,
        )
    settings: dict[str, Any] = {
        "dim": dim,
        "seed": seed,
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "holdout": holdout,
        "validation": validation,
        "batch_size": batch_size,
        "patience": patience,
        "subspace": fitted.subspace,
        "subspace_variance": round(fitted.subspace_variance, 6),
        "init": None if init is None else f"{init.kind} v{init.version}",
        "freeze_projection": freeze_projection,
        "threads": threads,
        "feature_kind": data.feature_kind,
    }
    version = version if version is not None else (init.version + 1 if init is not None else 1)
    train = fitted.splits["train"]
    projection = _fold(
        fitted.head,
        version=version,
        features=data.feature_kind,
        note=(
            f"click-finetuned {data.d_in}->{dim} on {train.examples} examples, "
            f"{train.clicks} clicks, {fitted.head.segment_ids.shape[0]} segments, "
            f"ts {train.ts_start:g}..{train.ts_end:g}, best epoch {fitted.best_epoch}, "
            f"from {settings['init'] or f'random seed={seed}'}"
            + (", projection frozen" if freeze_projection else "")
            + f"; held-out log loss {fitted.after.log_loss:.5f} vs {fitted.before.log_loss:.5f}"
            " offset only"
        ),
    )
    result = FinetuneResult(
        projection=projection,
        head=fitted.head,
        curve=fitted.curve,
        best_epoch=fitted.best_epoch,
        splits=fitted.splits,
        before=fitted.before,
        recalibrated=fitted.recalibrated,
        after=fitted.after,
        reference=fitted.reference,
        improvement=fitted.improvement,
        improvement_se=fitted.improvement_se,
        seconds=time.perf_counter() - started,
        peak_rss_bytes=_peak_rss_bytes(),
        settings=settings,
    )
    log.info(
        "fine-tuned head %d->%d in %.1f s (peak RSS %.0f MiB): held-out log loss "
        "%.5f offset only, %.5f recalibrated, %.5f with the head (gain %.5f +- %.5f)",
        data.d_in,
        dim,
        result.seconds,
        result.peak_rss_bytes / 2**20,
        result.before.log_loss,
        result.recalibrated.log_loss,
        result.after.log_loss,
        result.improvement,
        result.improvement_se,
    )
    return result


# --------------------------------------------------------------------------- internals


def _per_example_loss(logits: F64, clicks: npt.NDArray[np.bool_]) -> F64:
    """``log(1 + e^l) - y l``: the log loss of each example, stable for any logit."""
    z = np.asarray(logits, dtype=np.float64)
    return np.asarray(np.logaddexp(0.0, z) - np.asarray(clicks, dtype=np.float64) * z)


def _embed(
    coords: torch.Tensor, nonzero: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """``normalise(W . p + beta)`` of coordinates ``p``; rows of failed images give zeros.

    Zero rows stay zero as in :meth:`Projection.apply`: a failed image must
    not become a plausible vector, in training any more than when served.
    """
    y = (coords @ weight.T + shift) * nonzero.unsqueeze(1)
    return y * torch.rsqrt((y * y).sum(dim=1, keepdim=True).clamp_min(_TINY))


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch threads, then restore the caller's count."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _peak_rss_bytes() -> int:
    """The process's peak resident set size (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _fold(head: HeadParameters, *, version: int, features: str, note: str) -> Projection:
    """Rewrite ``W . basis.T . (x - m) / s + beta`` as ``C . (x - m')``: a plain Projection.

    ``C = (W . basis.T) / s`` column by column; the shift needs
    ``C . (m - m') = beta``, an underdetermined system (``dim`` equations,
    ``D`` unknowns) whose minimum-norm solution moves the mean as little as
    possible.
    """
    components = (head.weight.astype(np.float64) @ head.basis.T) / head.scale[None, :]
    delta = np.linalg.lstsq(components, head.shift.astype(np.float64), rcond=None)[0]
    return Projection(
        mean=(head.mean - delta).astype(np.float32),
        components=components.astype(np.float32),
        version=version,
        kind="finetuned",
        note=note,
        features=features,
    )


class _Standardise:
    """Features to training coordinates: standardise, then whiten into the top-K subspace."""

    def __init__(self, mean: F64, scale: F64, basis: F64) -> None:
        self.mean = torch.from_numpy(mean.astype(np.float32))
        self.inv_scale = torch.from_numpy((1.0 / scale).astype(np.float32))
        self.basis = torch.from_numpy(basis.astype(np.float32))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / scale``."""
        return (x - self.mean) * self.inv_scale

    def coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """``standardised(x) @ basis``: whitened coordinates in the subspace."""
        return self.standardised(x) @ self.basis


def _feature_stats(features: F32, rows: I64) -> tuple[F64, F64]:
    """Mean and standard deviation of ``features[rows]`` without a float64 copy.

    All-zero rows (failed images) are left out: they are not images. A
    constant feature keeps scale 1 rather than dividing by zero.
    """
    d = features.shape[1]
    total, square, count = np.zeros(d), np.zeros(d), 0
    for start in range(0, rows.shape[0], _ROWS):
        chunk = features[rows[start : start + _ROWS]].astype(np.float64)
        chunk = chunk[chunk.any(axis=1)]
        total += chunk.sum(axis=0)
        square += np.square(chunk).sum(axis=0)
        count += chunk.shape[0]
    if count == 0:
        return np.zeros(d), np.ones(d)
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean**2, 0.0))
    return mean, np.where(std > 1e-6 * (np.abs(mean) + 1e-12), std, 1.0)


def _principal_subspace(
    features: F32,
    rows: I64,
    standardise: _Standardise,
    subspace: int,
    rng: np.random.Generator,
) -> tuple[F64, F64, float]:
    """Top principal directions of the standardised ``features[rows]``.

    Returns the directions ``[D, K]``, their standard deviations ``[K]``
    and the share of the total variance they hold. ``K`` is at most
    ``subspace`` and stops before directions with under 1e-5 of the largest
    variance: the covariance is summed in float32, and whitening would blow
    its rounding noise up to unit size.

    When ``K`` is well below ``D``, the directions come from randomised
    subspace iteration (Halko, Martinsson & Tropp 2011: a Gaussian start
    drawn from ``rng``, four power steps, then an exact eigensolve in the
    ``K + 16``-dimensional subspace found). Measured at D = 3120, K = 256
    on the 2-core dev CPU: 0.5 s and ~30 MiB, against 4.2 s and ~230 MiB of
    workspace for a full ``eigh``, with the same top eigenvalues to 1e-15
    and 99.96% of the exact subspace's variance; the directions it gets less
    exactly are the near-equal ones at the noise floor, where any basis of
    their span trains alike. The covariance is accumulated in place in
    float32 for the same reason: a float64 one, and the float64 copy of
    each chunk's product that adding into it makes, cost ~150 MiB more.
    """
    d = features.shape[1]
    cov = torch.zeros((d, d))
    count = 0
    for start in range(0, rows.shape[0], _ROWS):
        x = torch.from_numpy(features[rows[start : start + _ROWS]])
        z = standardise.standardised(x[x.ne(0).any(dim=1)])
        cov.addmm_(z.T, z)  # in place: one D x D float32 matrix is all it holds
        count += z.shape[0]
    cov /= max(count, 1)
    total = float(cov.double().trace())
    if total <= 0:
        raise ValueError("the training images' features do not vary")
    if subspace + _OVERSAMPLE >= d:  # small D: the exact decomposition is cheap
        variance, vectors = torch.linalg.eigh(cov.double())
    else:
        basis = torch.from_numpy(
            rng.standard_normal((d, subspace + _OVERSAMPLE)).astype(np.float32)
        )
        for _ in range(_POWER_STEPS):
            basis = torch.linalg.qr(cov @ basis).Q
        variance, rotation = torch.linalg.eigh((basis.T @ cov @ basis).double())
        vectors = basis.double() @ rotation
    variance = variance.clamp_min(0.0)  # ascending, from eigh
    n = variance.shape[0]
    k = min(subspace, int((variance > 1e-5 * variance[-1]).sum()))
    top = torch.arange(n - 1, n - 1 - k, -1)  # largest first
    explained = float(variance[top].sum()) / total
    return vectors[:, top].numpy(), variance[top].sqrt().numpy(), explained


def _fit_biases(
    offsets: F64, clicks: F64, weights: F64, groups: I64, n_groups: int, prior: float
) -> F64:
    """Per-group bias on top of the offsets, penalised ``prior * b^2``, by Newton steps.

    The same objective as the full model with no head, so it is both the
    ``recalibrated`` reference and the full model's starting biases.
    """
    bias = np.zeros(n_groups)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(offsets + bias[groups])))
        grad = np.bincount(groups, weights=weights * (p - clicks), minlength=n_groups)
        hess = np.bincount(groups, weights=weights * p * (1 - p), minlength=n_groups)
        step = (grad + 2 * prior * bias) / (hess + 2 * prior + 1e-12)
        bias -= np.clip(step, -5.0, 5.0)
        if np.abs(step).max() < 1e-10:
            break
    return bias


@dataclass
class _Split:
    """One time split as tensors."""

    examples: I64
    rows: torch.Tensor  # feature row of each example
    groups: torch.Tensor
    offsets: torch.Tensor
    clicks: torch.Tensor
    weights: torch.Tensor

    def stats(self, data: TrainingSet) -> SplitStats:
        ts = data.ts[self.examples]
        return SplitStats(
            examples=int(self.examples.shape[0]),
            clicks=int(data.clicks[self.examples].sum()),
            images=int(np.unique(self.rows.numpy()).shape[0]),
            ts_start=float(ts.min()),
            ts_end=float(ts.max()),
        )


@dataclass
class _Fitted:
    head: HeadParameters
    curve: tuple[EpochLoss, ...]
    best_epoch: int
    splits: dict[str, SplitStats]
    before: Metrics
    recalibrated: Metrics
    after: Metrics
    reference: str
    improvement: float
    improvement_se: float
    subspace: int
    subspace_variance: float


class _Trainer:
    """The training loop's state: splits, coordinates, parameters, optimiser."""

    def __init__(
        self,
        data: TrainingSet,
        dim: int,
        rng: np.random.Generator,
        holdout: float,
        validation: float,
        weight_decay: float,
        subspace: int,
    ) -> None:
        self.data, self.dim, self.rng, self.prior = data, dim, rng, weight_decay
        parts = self._time_splits(holdout, validation)
        if not data.clicks[parts["train"]].any():
            raise ValueError("the training split has no clicks")
        # groups: the training split's distinct segments, then one slot for unseen ones
        self.segment_ids = np.unique(data.segments[parts["train"]])
        self.n_groups = int(self.segment_ids.shape[0])
        where = np.minimum(np.searchsorted(self.segment_ids, data.segments), self.n_groups - 1)
        groups = np.where(self.segment_ids[where] == data.segments, where, self.n_groups)
        rows, weights = data.rows(), data.example_weights()
        self.splits = {
            name: _Split(
                examples=idx,
                rows=torch.from_numpy(rows[idx]),
                groups=torch.from_numpy(groups[idx].astype(np.int64)),
                offsets=torch.from_numpy(data.offsets[idx].astype(np.float32)),
                clicks=torch.from_numpy(data.clicks[idx].astype(np.float32)),
                weights=torch.from_numpy(weights[idx].astype(np.float32)),
            )
            for name, idx in parts.items()
        }
        self.train_weight = float(weights[parts["train"]].sum())
        if self.train_weight <= 0:
            raise ValueError("the training split has zero total weight")
        self.bias0 = _fit_biases(
            data.offsets[parts["train"]],
            data.clicks[parts["train"]].astype(np.float64),
            weights[parts["train"]],
            groups[parts["train"]].astype(np.int64),
            self.n_groups + 1,
            weight_decay,
        )
        self.bias0[self.n_groups] = 0.0  # no training example: nothing to recalibrate
        self._coordinates(np.unique(rows[parts["train"]]), subspace)

    def _time_splits(self, holdout: float, validation: float) -> dict[str, I64]:
        """Example indices of the oldest (train), then validation, then latest (holdout)."""
        n = self.data.n_examples
        order = np.argsort(self.data.ts, kind="stable")
        n_hold, n_val = round(holdout * n), round(validation * n)
        n_train = n - n_hold - n_val
        if min(n_hold, n_val, n_train) < 1:
            raise ValueError(f"{n} examples are too few to split {holdout}/{validation}")
        return {
            "train": order[:n_train],
            "validation": order[n_train : n_train + n_val],
            "holdout": order[n_train + n_val :],
        }

    def _coordinates(self, train_images: I64, subspace: int) -> None:
        """Standardise and whiten from the training images; every image's coordinates, once.

        Training then reads ``K`` floats per example instead of ``D``: the
        epochs cost ``N K dim``, and the ``D``-wide work is this one pass.
        """
        features = self.data.features
        self.mean, self.scale = _feature_stats(features, train_images)
        plain = _Standardise(self.mean, self.scale, np.zeros((features.shape[1], 0)))
        sample = train_images
        if sample.shape[0] > _PCA_ROWS:  # the covariance is settled long before 20k rows
            sample = np.sort(self.rng.choice(train_images, _PCA_ROWS, replace=False))
        vectors, self.std, self.subspace_variance = _principal_subspace(
            features, sample, plain, subspace, self.rng
        )
        self.vectors = vectors
        self.basis = vectors / self.std[None, :]
        standardise = _Standardise(self.mean, self.scale, self.basis)
        self.coords = torch.empty((features.shape[0], self.basis.shape[1]))
        with torch.no_grad():
            for start in range(0, features.shape[0], _ROWS):
                x = torch.from_numpy(features[start : start + _ROWS])
                self.coords[start : start + _ROWS] = standardise.coordinates(x)
        self.nonzero = torch.from_numpy(features.any(axis=1))
        self.train_images = torch.from_numpy(train_images)
        log.info(
            "training in the top %d principal directions of %d standardised features "
            "(%.1f%% of their variance)",
            self.basis.shape[1],
            features.shape[1],
            100 * self.subspace_variance,
        )

    # ------------------------------------------------------------------ parameters

    def _initial_map(self, init: Projection | None) -> tuple[F64, F64]:
        """``W0, beta0`` in the whitened coordinates, scaled to unit output RMS.

        For ``init``: ``C0 (x - m0) = C0 s . z + C0 (m - m0)`` with
        ``x = m + s z``, and ``z = vectors . (std * p)`` within the subspace:
        exactly the current head's output when it lies in the subspace (a
        PCA head on the same features does), its projection otherwise.
        """
        k = self.basis.shape[1]
        weight: F64
        shift: F64
        if init is None:
            weight = self.rng.standard_normal((self.dim, k)) / math.sqrt(k)
            shift = np.zeros(self.dim)
        else:
            c0 = init.components.astype(np.float64)
            weight = np.asarray(
                (c0 * self.scale[None, :]) @ (self.vectors * self.std[None, :]), dtype=np.float64
            )
            shift = c0 @ (self.mean - init.mean.astype(np.float64))
        sample = self.train_images[:_CHUNK]
        sample = sample[self.nonzero[sample]]
        y = self.coords[sample].double().numpy() @ weight.T + shift
        rms = float(np.sqrt(np.mean(np.square(y)))) if y.size else 1.0
        rms = rms if rms > 0 else 1.0
        return weight / rms, shift / rms

    def _parameters(self, init: Projection | None, freeze: bool) -> dict[str, torch.Tensor]:
        """Initial ``W``, ``beta`` (from ``init`` or random), zero coefficients, fitted biases."""
        weight0, shift0 = self._initial_map(init)
        return {
            "weight": torch.tensor(weight0, dtype=torch.float32, requires_grad=not freeze),
            "shift": torch.tensor(shift0, dtype=torch.float32, requires_grad=not freeze),
            "shared": torch.zeros(self.dim, requires_grad=True),
            "coef": torch.zeros((self.n_groups + 1, self.dim), requires_grad=True),
            "bias": torch.tensor(self.bias0, dtype=torch.float32, requires_grad=True),
        }

    @staticmethod
    def _optimiser(params: dict[str, torch.Tensor], lr: float, freeze: bool) -> torch.optim.Adam:
        """Adam with ``W``'s step scaled to its entries (see the module docstring)."""
        groups: list[dict[str, Any]] = [
            {"params": [params["shared"], params["coef"], params["bias"]]}
        ]
        if not freeze:
            w_rms = float(params["weight"].detach().square().mean().sqrt())
            groups += [
                {"params": [params["weight"]], "lr": lr * w_rms},
                {"params": [params["shift"]]},
            ]
        return torch.optim.Adam(groups, lr=lr)

    # ------------------------------------------------------------------ the model

    def _logits(
        self, split: _Split, params: dict[str, torch.Tensor], examples: torch.Tensor | slice
    ) -> torch.Tensor:
        """Model logits of ``split``'s ``examples`` (positions in the split)."""
        rows, groups = split.rows[examples], split.groups[examples]
        embedded = _embed(self.coords[rows], self.nonzero[rows], params["weight"], params["shift"])
        coef = params["shared"] + params["coef"][groups]
        return split.offsets[examples] + params["bias"][groups] + (coef * embedded).sum(dim=1)

    def _evaluate(self, name: str, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a whole split, in chunks (bounded memory)."""
        split = self.splits[name]
        with torch.no_grad():
            return torch.cat(
                [
                    self._logits(split, params, slice(s, s + _CHUNK))
                    for s in range(0, split.rows.shape[0], _CHUNK)
                ]
            )

    def _loss(self, name: str, params: dict[str, torch.Tensor]) -> float:
        """Weighted log loss of a whole split (no penalty)."""
        split = self.splits[name]
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            self._evaluate(name, params), split.clicks, reduction="none"
        )
        return float((per * split.weights).sum() / split.weights.sum().clamp_min(_TINY))

    # ------------------------------------------------------------------ training

    def _epoch(
        self, params: dict[str, torch.Tensor], optimiser: torch.optim.Adam, batch_size: int
    ) -> float:
        """One shuffled pass over the training split; the mean minibatch log loss."""
        train = self.splits["train"]
        order = torch.from_numpy(self.rng.permutation(train.examples.shape[0]))
        penalty_scale = self.prior / self.train_weight
        total, weight_sum = 0.0, 0.0
        for start in range(0, order.shape[0], batch_size):
            batch = order[start : start + batch_size]
            w = train.weights[batch]
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                self._logits(train, params, batch), train.clicks[batch], reduction="none"
            )
            data_loss = (per * w).sum() / w.sum().clamp_min(_TINY)
            penalty = penalty_scale * (
                params["coef"].square().sum() + params["bias"].square().sum()
            )
            optimiser.zero_grad()
            torch.autograd.backward(data_loss + penalty)
            optimiser.step()
            total += float(data_loss.detach()) * float(w.sum())
            weight_sum += float(w.sum())
        return total / max(weight_sum, _TINY)

    def fit(
        self,
        *,
        epochs: int,
        lr: float,
        batch_size: int,
        patience: int,
        init: Projection | None,
        freeze: bool,
        progress: bool,
    ) -> _Fitted:
        """Train with early stopping on validation loss; keep the best epoch's parameters."""
        params = self._parameters(init, freeze)
        optimiser = self._optimiser(params, lr, freeze)

        def losses(epoch: int, train: float) -> EpochLoss:
            return EpochLoss(
                epoch, train, self._loss("validation", params), self._loss("holdout", params)
            )

        curve = [losses(0, self._loss("train", params))]
        best_epoch, best = 0, {k: v.detach().clone() for k, v in params.items()}
        bar = _progress_bar(epochs) if progress else None
        try:
            for epoch in range(1, epochs + 1):
                entry = losses(epoch, self._epoch(params, optimiser, batch_size))
                curve.append(entry)
                log.debug("epoch %d: %s", epoch, entry)
                if bar is not None:
                    bar.set_postfix(
                        train=f"{entry.train:.4f}", validation=f"{entry.validation:.4f}"
                    )
                    bar.update(1)
                if entry.validation < curve[best_epoch].validation:
                    best_epoch, best = epoch, {k: v.detach().clone() for k, v in params.items()}
                elif epoch - best_epoch >= patience:
                    log.info("early stop after epoch %d; best epoch %d", epoch, best_epoch)
                    break
        finally:
            if bar is not None:
                bar.close()
        return self._finish(best, best_epoch, tuple(curve))

    def _finish(
        self, best: dict[str, torch.Tensor], best_epoch: int, curve: tuple[EpochLoss, ...]
    ) -> _Fitted:
        """Held-out metrics of the kept parameters against both references."""
        hold = self.splits["holdout"]
        after_logits = self._evaluate("holdout", best).double().numpy()
        idx = hold.examples
        y = self.data.clicks[idx]
        w = self.data.example_weights()[idx]
        offsets = self.data.offsets[idx]
        recal_logits = offsets + self.bias0[hold.groups.numpy()]
        scorers = {"before": offsets, "recalibrated": recal_logits, "after": after_logits}
        metrics = {name: Metrics(log_loss(s, y, w), auc(s, y, w)) for name, s in scorers.items()}
        reference = (
            "before"
            if metrics["before"].log_loss <= metrics["recalibrated"].log_loss
            else "recalibrated"
        )
        diff = _per_example_loss(scorers[reference], y) - _per_example_loss(after_logits, y)
        mean = float(np.average(diff, weights=w))
        se = float(np.sqrt(np.sum(np.square(w * (diff - mean)))) / max(float(w.sum()), _TINY))
        head = HeadParameters(
            mean=self.mean,
            scale=self.scale,
            basis=self.basis,
            weight=best["weight"].numpy().astype(np.float32),
            shift=best["shift"].numpy().astype(np.float32),
            shared=best["shared"].numpy().astype(np.float32),
            segment_ids=self.segment_ids,
            segment_coef=best["coef"][: self.n_groups].numpy().astype(np.float32),
            segment_bias=best["bias"][: self.n_groups].numpy().astype(np.float32),
        )
        return _Fitted(
            head=head,
            curve=curve,
            best_epoch=best_epoch,
            splits={name: s.stats(self.data) for name, s in self.splits.items()},
            before=metrics["before"],
            recalibrated=metrics["recalibrated"],
            after=metrics["after"],
            reference=reference,
            improvement=mean,
            improvement_se=se,
            subspace=int(self.basis.shape[1]),
            subspace_variance=self.subspace_variance,
        )


def _progress_bar(epochs: int) -> Any:
    """A tqdm bar over epochs (tqdm ships no type information, hence ``Any``)."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=epochs, desc="fine-tune head", unit="epoch")
