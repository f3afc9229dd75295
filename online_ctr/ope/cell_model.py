"""A cross-fitted reward model for doubly robust: shrunk click rates per cell.

DR subtracts ``q(x, a)`` from each reward; it gains only where ``q``
predicts the clicks better than the base rate, and stays unbiased only if
``q`` never saw the reward it predicts. The served online model is fitted
on the very impressions it scores, and on a few thousand impressions it
barely beats the base rate. This model uses the structure the logs have:
the click rate of each cell along a chain of ever finer contexts

    everything -> (item, variant) -> (item, variant, group) -> (item, variant, segment)

where ``group`` is a few segment fields (default ``taste``), each cell's
rate shrunk towards its parent's by an empirical-Bayes beta prior whose
strength is the method of moments' (Robbins; Efron's "Large-scale
inference" ch. 1). It is cross-fitted (Chernozhukov et al. 2018): the units
are split into ``folds`` and each fold is predicted by the model fitted on
the others (plus ``prior_units``, logs from before the window), so ``q``
never saw the reward it predicts.

>>> from online_ctr.ope.logged import LoggedImpression
>>> units = [LoggedImpression("taste=a", "i", ("x", "y"), "xy"[k % 2], 0.5,
...                           float(k % 4 == 0), (0.0, 0.0)) for k in range(40)]
>>> q = cross_fitted_rewards(units, folds=2)
>>> [round(v, 2) for v in q[0]]  # x was clicked half the time, y never
[0.62, 0.07]
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from online_ctr.ope.logged import LoggedImpression

__all__ = ["DEFAULT_GROUP_FIELDS", "CellModel", "cross_fitted_rewards"]

log = logging.getLogger(__name__)

#: the segment fields of the middle level of the chain
DEFAULT_GROUP_FIELDS: tuple[str, ...] = ("taste",)
#: bounds of a level's prior strength (pseudo-impressions)
_MIN_STRENGTH, _MAX_STRENGTH = 1.0, 1e6

Cell = tuple[str, ...]
FloatArray = npt.NDArray[np.float64]


def _fields(segment: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in segment.split(",") if "=" in p)


def _chain(segment: str, item: str, variant: str, group: Sequence[str]) -> list[Cell]:
    """The cells of one (context, variant), coarsest first (the root ``()`` excluded)."""
    fields = _fields(segment)
    grouped = ",".join(f"{f}={fields.get(f, '')}" for f in group)
    return [(item, variant), (item, variant, grouped), (item, variant, "seg:" + segment)]


def _strength(clicks: FloatArray, counts: FloatArray, parent: FloatArray) -> float:
    """The method of moments' beta-prior strength: binomial noise over the rates' excess spread.

    Written here: a one-line moment estimate, no library fits this hierarchy.
    """
    rates = clicks / counts
    noise = parent * (1.0 - parent) / counts
    excess = float(np.average((rates - parent) ** 2 - noise, weights=counts))
    mean_var = float(np.average(parent * (1.0 - parent), weights=counts))
    if excess <= 0.0:
        return _MAX_STRENGTH
    return float(np.clip(mean_var / excess - 1.0, _MIN_STRENGTH, _MAX_STRENGTH))


class CellModel:
    """Shrunk click rates along the cell chain, fitted on logged units (see the module)."""

    def __init__(
        self, units: Sequence[LoggedImpression], group: Sequence[str] = DEFAULT_GROUP_FIELDS
    ) -> None:
        self.group = tuple(group)
        clicks: list[dict[Cell, float]] = [defaultdict(float) for _ in range(3)]
        counts: list[dict[Cell, float]] = [defaultdict(float) for _ in range(3)]
        total = 0.0
        for u in units:
            total += u.reward
            for level, cell in enumerate(_chain(u.segment, u.item_id, u.shown, self.group)):
                clicks[level][cell] += u.reward
                counts[level][cell] += 1.0
        n = len(units)
        # the root: a Jeffreys-like half click so an empty or clickless fit is not 0
        self.base = (total + 0.5) / (n + 1.0)
        self.rates: list[dict[Cell, float]] = []
        self.strengths: list[float] = []
        for level in range(3):
            cells = list(counts[level])
            if not cells:
                self.rates.append({})
                self.strengths.append(_MAX_STRENGTH)
                continue
            c = np.array([clicks[level][k] for k in cells])
            m = np.array([counts[level][k] for k in cells])
            p = np.array([self._parent(level, k) for k in cells])
            k_strength = _strength(c, m, p)
            self.strengths.append(k_strength)
            self.rates.append(
                dict(zip(cells, ((c + k_strength * p) / (m + k_strength)).tolist(), strict=True))
            )
        log.debug("cell model on %d units: prior strengths %s", n, self.strengths)

    def _parent(self, level: int, cell: Cell) -> float:
        """The fitted rate of the cell one level up (the base rate above level 0)."""
        if level == 0:
            return self.base
        if level == 1:
            return self.rates[0][cell[:2]]
        fields = _fields(cell[2].removeprefix("seg:"))
        grouped = ",".join(f"{f}={fields.get(f, '')}" for f in self.group)
        return self.rates[1][(*cell[:2], grouped)]

    def predict(self, segment: str, item: str, variant: str) -> float:
        """The shrunk click rate of the finest cell seen; its parent's for an unseen cell."""
        value = self.base
        for level, cell in enumerate(_chain(segment, item, variant, self.group)):
            rate = self.rates[level].get(cell)
            if rate is None:
                return value
            value = rate
        return value


def cross_fitted_rewards(
    units: Sequence[LoggedImpression],
    *,
    folds: int = 2,
    group: Sequence[str] = DEFAULT_GROUP_FIELDS,
    prior_units: Sequence[LoggedImpression] = (),
    seed: int = 0,
) -> list[tuple[float, ...]]:
    """``q(x, a)`` for every candidate of every unit, each fold predicted by a model of the others.

    ``prior_units`` (logs from before the window) join every fold's training
    set. The fold of a unit is a seeded random draw, so an answer repeats.
    """
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    fold = np.random.default_rng(seed).integers(0, folds, len(units))
    out: list[tuple[float, ...]] = [()] * len(units)
    for f in range(folds):
        train = [u for u, g in zip(units, fold, strict=True) if g != f]
        model = CellModel([*prior_units, *train], group)
        for i in np.flatnonzero(fold == f):
            u = units[i]
            out[i] = tuple(model.predict(u.segment, u.item_id, c) for c in u.candidates)
    return out
