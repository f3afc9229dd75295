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

How it is fitted, and why in a whitened principal subspace of the features,
is in :mod:`encoder_server.training.head_trainer` and :mod:`encoder_server.training.whitening`;
what it leaves (parameters, curve, held-out metrics) in :mod:`encoder_server.training.fitted`;
the examples' contract is :class:`~encoder_server.training.training_set.TrainingSet`;
the metrics are :mod:`encoder_server.training.click_metrics`; whether a result earns
a new version is :func:`~encoder_server.training.gate.should_publish`. This
module ties them together (:func:`train_head`) and folds the trained chain
into a servable :class:`~encoder_server.projection.Projection`. Its public
names are re-exported here, so callers import the job's vocabulary from one
place.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch

from encoder_server.projection import Projection
from encoder_server.training.click_metrics import Metrics, auc, log_loss
from encoder_server.training.config import HeadTrainingConfig
from encoder_server.training.fitted import EpochLoss, FittedHead, HeadParameters, SplitStats
from encoder_server.training.gate import should_publish
from encoder_server.training.head_trainer import EpochBar, EpochBars, HeadTrainer
from encoder_server.training.result import FinetuneResult
from encoder_server.training.training_set import TrainingSet

__all__ = [
    "EpochBar",
    "EpochBars",
    "EpochLoss",
    "FinetuneResult",
    "HeadParameters",
    "HeadTrainingConfig",
    "Metrics",
    "SplitStats",
    "TrainingSet",
    "auc",
    "log_loss",
    "should_publish",
    "train_head",
]

log = logging.getLogger(__name__)


def train_head(
    data: TrainingSet,
    config: HeadTrainingConfig | None = None,
    *,
    init: Projection | None = None,
    version: int | None = None,
    progress: EpochBars | None = None,
) -> FinetuneResult:
    """Train a projection head on click log loss over the online model's offsets.

    Parameters
    ----------
    data:
        The examples (see :class:`TrainingSet`).
    config:
        The training parameters (see :class:`HeadTrainingConfig`); ``None``:
        its defaults.
    init:
        Head to start from (the one serving now, e.g. a PCA head), mapped
        into the training coordinates (exactly when it lies in the
        subspace, as a PCA head of up to ``config.subspace`` components
        does); ``None``: a random Gaussian map.
    version:
        The new head's version; ``None``: ``init.version + 1``, else 1.
    progress:
        Makes a progress bar over the epochs (given their most; see
        :class:`~encoder_server.training.head_trainer.EpochBar`); ``None``:
        none.

    Raises
    ------
    ValueError
        On inconsistent shapes or parameters, a split with no examples, or
        a training split with no clicks.
    """
    started = time.perf_counter()
    config = HeadTrainingConfig() if config is None else config
    dim = config.resolve_dim(data, init)
    with _torch_threads(config.threads):
        fitted = HeadTrainer(data, dim, config).fit(init, progress=progress)
    settings = config.settings(
        dim=dim,
        init=init,
        subspace=fitted.subspace,
        subspace_variance=fitted.subspace_variance,
        feature_kind=data.feature_kind,
    )
    if version is None:
        version = init.version + 1 if init is not None else 1
    projection = _fold(
        fitted.head,
        version=version,
        features=data.feature_kind,
        note=_note(data, dim, fitted, config, settings["init"] or f"random seed={config.seed}"),
    )
    result = FinetuneResult.of(
        fitted,
        projection=projection,
        seconds=time.perf_counter() - started,
        peak_rss_bytes=_peak_rss_bytes(),
        settings=settings,
    )
    _log_result(result, data.d_in, dim)
    return result


def _note(
    data: TrainingSet, dim: int, fitted: FittedHead, config: HeadTrainingConfig, origin: str
) -> str:
    """The new head's ``note``: what it was trained on, from what, and how it did."""
    train = fitted.splits["train"]
    return (
        f"click-finetuned {data.d_in}->{dim} on {train.examples} examples, "
        f"{train.clicks} clicks, {fitted.head.segment_ids.shape[0]} segments, "
        f"ts {train.ts_start:g}..{train.ts_end:g}, best epoch {fitted.best_epoch}, "
        f"from {origin}"
        + (", projection frozen" if config.freeze_projection else "")
        + f"; held-out log loss {fitted.after.log_loss:.5f} vs {fitted.before.log_loss:.5f}"
        " offset only"
    )


def _log_result(result: FinetuneResult, d_in: int, dim: int) -> None:
    log.info(
        "fine-tuned head %d->%d in %.1f s (peak RSS %.0f MiB): held-out log loss "
        "%.5f offset only, %.5f recalibrated, %.5f with the head (gain %.5f +- %.5f)",
        d_in,
        dim,
        result.seconds,
        result.peak_rss_bytes / 2**20,
        result.before.log_loss,
        result.recalibrated.log_loss,
        result.after.log_loss,
        result.improvement,
        result.improvement_se,
    )


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
