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
from typing import Any

import numpy as np
import torch

from encoder_server.projection import Projection
from encoder_server.training.click_metrics import Metrics, auc, log_loss
from encoder_server.training.gate import should_publish
from encoder_server.training.head_trainer import EpochLoss, HeadParameters, HeadTrainer, SplitStats
from encoder_server.training.result import FinetuneResult
from encoder_server.training.training_set import TrainingSet

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
        Adam step size (``W``'s is scaled, see :mod:`encoder_server.training.head_trainer`).
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
        standardised features, whitened (see :mod:`encoder_server.training.whitening`).
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
        fitted = HeadTrainer(data, dim, rng, holdout, validation, weight_decay, subspace).fit(
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
