"""Doubly robust with optimised shrinkage (Su, Dimakopoulou, Krishnamurthy & Dudík 2020).

DR's noise is ``w (r - q)``: with a rare click it is mostly the click's own
Bernoulli noise, which no reward model removes. DRos shrinks the weight to
``w_l = l w / (w^2 + l)`` (``l`` = infinity is DR, ``l`` = 0 the reward
model alone), trading that noise for the bias ``mean((w_l - w)(r - q))``.
``l`` is picked from a grid by the estimated mean squared error, variance
plus a high-probability bound on the squared bias (the bias estimate plus
its 1.96 standard errors, as OBP's ``DoublyRobustWithShrinkageTuning`` with
``use_bias_upper_bound``). The 95% interval is the bootstrap-t interval of
the chosen terms widened on each side by that bias bound, so a shrunk
estimate does not claim more than it knows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from online_ctr.ope.estimate import Estimate, effective_sample_size, mean_interval
from online_ctr.ope.terms import Terms

__all__ = ["LAMBDA_GRID", "dr_shrinkage", "shrinkage_terms"]

FloatArray = npt.NDArray[np.float64]

#: the shrinkage grid, in units of the largest squared weight (infinity: plain DR)
LAMBDA_GRID: tuple[float, ...] = (*(10.0**k for k in np.arange(-3.0, 3.01, 0.25)), np.inf)
#: the normal quantile of the one-sided bias bound
_BIAS_Z = 1.96


def shrinkage_terms(terms: Terms, lam: float) -> tuple[FloatArray, float]:
    """The per-impression DRos terms at ``lam`` and the high-probability bias bound.

    >>> t = Terms(np.array([2.0, 0.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5]),
    ...           np.array([0.5, 0.5]))
    >>> [float(x) for x in shrinkage_terms(t, np.inf)[0]]
    [1.5, 0.5]
    """
    w = terms.weights
    if np.isinf(lam):
        shrunk = w
    else:  # lam = 0 is the reward model alone (0 / 0 where w = 0)
        denominator = w**2 + lam
        shrunk = np.divide(lam * w, denominator, out=np.zeros_like(w), where=denominator > 0)
    residual = terms.rewards - terms.q_shown
    values = terms.q_target + shrunk * residual
    bias_terms = (shrunk - w) * residual
    n = len(w)
    se = float(np.std(bias_terms, ddof=1)) / np.sqrt(n) if n > 1 else 0.0
    return values, abs(float(np.mean(bias_terms))) + _BIAS_Z * se


def dr_shrinkage(terms: Terms) -> Estimate:
    """The DRos estimate at the ``l`` of least estimated MSE, with its widened interval."""
    scale = float(np.max(terms.weights)) ** 2
    best: tuple[float, FloatArray, float] | None = None
    for factor in LAMBDA_GRID:
        values, bias = shrinkage_terms(terms, factor * scale)
        mse = float(np.var(values, ddof=1)) / terms.n + bias**2
        if best is None or mse < best[0]:
            best = (mse, values, bias)
    assert best is not None  # the grid is not empty
    _, values, bias = best
    value, low, high = mean_interval(values)
    return Estimate(
        "dros", value, low - bias, high + bias, terms.n, effective_sample_size(terms.weights)
    )
