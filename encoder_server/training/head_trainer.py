"""The training loop of a projection head: time splits, parameters, Adam, early stopping.

The model and why it is shaped so are in :mod:`encoder_server.training.finetune`;
this module is how it is fitted. :class:`HeadTrainer` holds the splits as
tensors and every image's whitened coordinates
(:mod:`encoder_server.training.whitening`), trains ``W``, ``beta`` and the
scaffolding coefficients, keeps the best validation epoch and measures the
kept parameters on the held-out split against both references, as a
:class:`~encoder_server.training.fitted.FittedHead`.

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

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from encoder_server.projection import Projection
from encoder_server.training.click_metrics import Metrics, auc, log_loss, per_example_loss
from encoder_server.training.config import HeadTrainingConfig
from encoder_server.training.fitted import (
    TINY,
    EpochLoss,
    FittedHead,
    HeadParameters,
    SplitStats,
    embed_coordinates,
)
from encoder_server.training.training_set import TrainingSet
from encoder_server.training.whitening import ROWS, Standardise, feature_stats, principal_subspace

# the fitted values are re-exported: this module was their home, and callers import them from here
__all__ = [
    "EpochBar",
    "EpochBars",
    "EpochLoss",
    "FittedHead",
    "HeadParameters",
    "HeadTrainer",
    "SplitStats",
    "embed_coordinates",
]

log = logging.getLogger(__name__)


class EpochBar(Protocol):
    """What :meth:`HeadTrainer.fit` reports its epochs to: a progress bar.

    The command that runs the training decides how it is shown (a tqdm
    bar in a terminal, plain lines in a log: ``bertctr.cli.progress``);
    this layer only counts.
    """

    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **values: str) -> None: ...

    def close(self) -> None: ...


#: makes the bar of one training run, given its most epochs
EpochBars = Callable[[int], EpochBar]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: examples per chunk when evaluating a split (K-wide, cheap)
_CHUNK = 65_536
#: at most this many training images estimate the principal subspace
_PCA_ROWS = 20_000


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


class HeadTrainer:
    """The training loop's state: splits, coordinates, parameters, optimiser.

    ``dim`` is the embedding width, already resolved and checked
    (:meth:`HeadTrainingConfig.resolve_dim`); every random draw comes from
    ``numpy.random.default_rng(config.seed)``.
    """

    def __init__(self, data: TrainingSet, dim: int, config: HeadTrainingConfig) -> None:
        self.data, self.dim, self.config = data, dim, config
        self.rng = np.random.default_rng(config.seed)
        self.prior = config.weight_decay
        parts = self._time_splits(config.holdout, config.validation)
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
            self.prior,
        )
        self.bias0[self.n_groups] = 0.0  # no training example: nothing to recalibrate
        self._coordinates(np.unique(rows[parts["train"]]), config.subspace)

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
        self.mean, self.scale = feature_stats(features, train_images)
        plain = Standardise(self.mean, self.scale, np.zeros((features.shape[1], 0)))
        sample = train_images
        if sample.shape[0] > _PCA_ROWS:  # the covariance is settled long before 20k rows
            sample = np.sort(self.rng.choice(train_images, _PCA_ROWS, replace=False))
        vectors, self.std, self.subspace_variance = principal_subspace(
            features, sample, plain, subspace, self.rng
        )
        self.vectors = vectors
        self.basis = vectors / self.std[None, :]
        standardise = Standardise(self.mean, self.scale, self.basis)
        self.coords = torch.empty((features.shape[0], self.basis.shape[1]))
        with torch.no_grad():
            for start in range(0, features.shape[0], ROWS):
                x = torch.from_numpy(features[start : start + ROWS])
                self.coords[start : start + ROWS] = standardise.coordinates(x)
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
        embedded = embed_coordinates(
            self.coords[rows], self.nonzero[rows], params["weight"], params["shift"]
        )
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
        return float((per * split.weights).sum() / split.weights.sum().clamp_min(TINY))

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
            data_loss = (per * w).sum() / w.sum().clamp_min(TINY)
            penalty = penalty_scale * (
                params["coef"].square().sum() + params["bias"].square().sum()
            )
            optimiser.zero_grad()
            torch.autograd.backward(data_loss + penalty)
            optimiser.step()
            total += float(data_loss.detach()) * float(w.sum())
            weight_sum += float(w.sum())
        return total / max(weight_sum, TINY)

    def fit(self, init: Projection | None, *, progress: EpochBars | None = None) -> FittedHead:
        """Train with early stopping on validation loss; keep the best epoch's parameters.

        ``init``: the head to start from (``None``: a random map); ``progress``:
        makes a bar over the epochs (given their most), updated after each
        with the train and validation losses, closed at the end.
        """
        epochs, patience = self.config.epochs, self.config.patience
        freeze = self.config.freeze_projection
        params = self._parameters(init, freeze)
        optimiser = self._optimiser(params, self.config.lr, freeze)

        def losses(epoch: int, train: float) -> EpochLoss:
            return EpochLoss(
                epoch, train, self._loss("validation", params), self._loss("holdout", params)
            )

        curve = [losses(0, self._loss("train", params))]
        best_epoch, best = 0, {k: v.detach().clone() for k, v in params.items()}
        bar = progress(epochs) if progress is not None else None
        try:
            for epoch in range(1, epochs + 1):
                entry = losses(epoch, self._epoch(params, optimiser, self.config.batch_size))
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
    ) -> FittedHead:
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
        diff = per_example_loss(scorers[reference], y) - per_example_loss(after_logits, y)
        mean = float(np.average(diff, weights=w))
        se = float(np.sqrt(np.sum(np.square(w * (diff - mean)))) / max(float(w.sum()), TINY))
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
        return FittedHead(
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
