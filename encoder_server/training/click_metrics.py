"""Weighted log loss and AUC of click scorers: how the fine-tuning job judges a head.

Computed on logits, not probabilities, so a confident scorer never meets
``log(0)``; weighted, because training sets carry importance or recency
weights and the metrics must count what the loss counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Metrics", "auc", "log_loss", "per_example_loss"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Metrics:
    """Weighted log loss (nats per example) and AUC of one scorer on one split."""

    log_loss: float
    auc: float


def log_loss(logits: F64, clicks: npt.NDArray[np.bool_], weights: F64 | None = None) -> float:
    """Weighted mean log loss (nats) of ``logits``: computed on logits, so never ``log(0)``."""
    per = per_example_loss(logits, clicks)
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


def per_example_loss(logits: F64, clicks: npt.NDArray[np.bool_]) -> F64:
    """``log(1 + e^l) - y l``: the log loss of each example, stable for any logit."""
    z = np.asarray(logits, dtype=np.float64)
    return np.asarray(np.logaddexp(0.0, z) - np.asarray(clicks, dtype=np.float64) * z)
