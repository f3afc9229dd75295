"""Standardise and whiten backbone features into their top principal directions.

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

Everything here is ``D``-wide and runs once per distinct image, in chunks
of :data:`ROWS` rows, so a window of many impressions of few images costs
little.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["ROWS", "Standardise", "feature_stats", "principal_subspace"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: feature rows per chunk in the D-wide passes (a few MiB each at D = 3120)
ROWS = 1024
#: randomised subspace iteration: extra directions and power steps (Halko et al. 2011)
_OVERSAMPLE = 16
_POWER_STEPS = 4


class Standardise:
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


def feature_stats(features: F32, rows: I64) -> tuple[F64, F64]:
    """Mean and standard deviation of ``features[rows]`` without a float64 copy.

    All-zero rows (failed images) are left out: they are not images. A
    constant feature keeps scale 1 rather than dividing by zero.
    """
    d = features.shape[1]
    total, square, count = np.zeros(d), np.zeros(d), 0
    for start in range(0, rows.shape[0], ROWS):
        chunk = features[rows[start : start + ROWS]].astype(np.float64)
        chunk = chunk[chunk.any(axis=1)]
        total += chunk.sum(axis=0)
        square += np.square(chunk).sum(axis=0)
        count += chunk.shape[0]
    if count == 0:
        return np.zeros(d), np.ones(d)
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean**2, 0.0))
    return mean, np.where(std > 1e-6 * (np.abs(mean) + 1e-12), std, 1.0)


def principal_subspace(
    features: F32,
    rows: I64,
    standardise: Standardise,
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
    ``K + 16``-dimensional subspace found): several times faster and
    smaller than a full ``eigh``, with the same top eigenvalues
    (``docs/measurements.md``); the directions it gets less exactly are the
    near-equal ones at the noise floor, where any basis of their span trains
    alike. The covariance is accumulated in place in float32 for the same
    reason: a float64 one, and the float64 copy of each chunk's product that
    adding into it makes, cost much more memory.
    """
    d = features.shape[1]
    cov = torch.zeros((d, d))
    count = 0
    for start in range(0, rows.shape[0], ROWS):
        x = torch.from_numpy(features[rows[start : start + ROWS]])
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
