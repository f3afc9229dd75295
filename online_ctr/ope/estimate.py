"""An off-policy estimate, its 95% interval and the effective sample size.

The intervals are normal (CLT) intervals on the mean of per-impression
terms, as VW's estimators and OBP's DR report a mean of round rewards;
OBP's bootstrap would cost a thousand passes for the same answer at the
sample sizes this is allowed to run at (``terms.DEFAULT_MIN_IMPRESSIONS``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["CONFIDENCE", "Estimate", "clt_interval", "effective_sample_size"]

#: the level of every interval
CONFIDENCE = 0.95

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """A policy value (a CTR) with its interval, sample size and effective sample size."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    #: Kish's effective sample size of the importance weights, ``(sum w)^2 / sum w^2``
    ess: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON block of ``bertctr ope --json``: ``estimate``, ``ci_low``, ``ci_high``, ..."""
        out = asdict(self)
        out["estimate"] = out.pop("value")
        out.pop("estimator")
        return out


def _z() -> float:
    return float(stats.norm.ppf(0.5 + CONFIDENCE / 2.0))


def clt_interval(center: float, std_error: float) -> tuple[float, float]:
    """``center +- z * std_error`` with ``z`` the normal quantile of :data:`CONFIDENCE`.

    >>> [round(x, 3) for x in clt_interval(0.5, 0.1)]
    [0.304, 0.696]
    """
    half = _z() * std_error
    return center - half, center + half


def mean_interval(terms: FloatArray) -> tuple[float, float, float]:
    """The mean of per-impression ``terms`` and its CLT interval (sample sd, ``ddof=1``)."""
    n = len(terms)
    mean = float(np.mean(terms))
    se = float(np.std(terms, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    low, high = clt_interval(mean, se)
    return mean, low, high


def effective_sample_size(weights: FloatArray) -> float:
    """Kish's ``(sum w)^2 / sum w^2``: how many on-policy impressions the weights are worth.

    >>> effective_sample_size(np.array([1.0, 1.0, 1.0, 1.0]))
    4.0
    >>> effective_sample_size(np.array([4.0, 0.0, 0.0, 0.0]))
    1.0
    """
    total_sq = float(np.sum(weights**2))
    return float(np.sum(weights)) ** 2 / total_sq if total_sq > 0 else 0.0
