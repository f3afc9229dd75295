"""What training a head leaves: its parameters, the loss curve, the splits, the held-out verdict.

Values only: :class:`~encoder_server.training.head_trainer.HeadTrainer` makes a
:class:`FittedHead`, :class:`~encoder_server.training.result.FinetuneResult`
extends it, and the gate and the report read it. :class:`HeadParameters` can
also embed features exactly as training did (:func:`embed_coordinates`, the
function the trainer optimises), which is how the folded, published head is
checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from encoder_server.training.click_metrics import Metrics
from encoder_server.training.whitening import Standardise

__all__ = ["EpochLoss", "FittedHead", "HeadParameters", "SplitStats", "embed_coordinates"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: norms below this are "no embedding" (an all-zero feature row)
TINY = 1e-24


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
        standardise = Standardise(self.mean, self.scale, self.basis)
        with torch.no_grad():
            out = embed_coordinates(
                standardise.coordinates(torch.from_numpy(x)),
                torch.from_numpy(x.any(axis=1)),
                torch.from_numpy(self.weight),
                torch.from_numpy(self.shift),
            )
        return out.numpy()


def embed_coordinates(
    coords: torch.Tensor, nonzero: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """``normalise(W . p + beta)`` of coordinates ``p``; rows of failed images give zeros.

    Zero rows stay zero as in :meth:`Projection.apply`: a failed image must
    not become a plausible vector, in training any more than when served.
    """
    y = (coords @ weight.T + shift) * nonzero.unsqueeze(1)
    return y * torch.rsqrt((y * y).sum(dim=1, keepdim=True).clamp_min(TINY))


@dataclass(frozen=True)
class FittedHead:
    """What :meth:`HeadTrainer.fit` kept and how it did on the held-out split.

    :class:`~encoder_server.training.result.FinetuneResult` extends it with
    the published head and the run's cost, so these attributes are the
    result's too.

    Attributes
    ----------
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
    subspace, subspace_variance:
        The principal directions trained in, and the share of the
        standardised features' variance they hold.
    """

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
