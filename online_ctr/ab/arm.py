"""An arm of a visual A/B test: one variant's counts in one segment, and its posterior.

Each arm has an unknown CTR ``p`` with a ``Beta(prior_a, prior_b)`` prior;
after ``n`` impressions and ``c`` clicks its posterior is
``Beta(prior_a + c, prior_b + n - c)``. The decision rule takes the prior
from the pooled CTR of the item or segment (:mod:`online_ctr.ab.prior`);
the functions here default to ``Beta(1, 1)`` (uniform), which keeps the
closed forms of the tests simple. :class:`Beta` is a small frozen value
over scipy's regularized incomplete beta function and its inverse, so
credible intervals are exact quantiles, not Monte Carlo.

>>> arm = Arm("b", impressions=1000, clicks=40)
>>> arm.ctr, arm.posterior()
(0.04, Beta(alpha=41.0, beta=961.0))
>>> low, high = arm.credible_interval(0.95)
>>> bool(0.028 < low < 0.04 < high < 0.055)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

__all__ = ["Arm", "Beta", "check_names"]


@dataclass(frozen=True)
class Beta:
    """A ``Beta(alpha, beta)`` distribution: an arm's posterior CTR (scipy underneath).

    A frozen value rather than ``scipy.stats.beta(...)``: it compares,
    hashes and prints as its two parameters, and scipy's special functions
    are called directly (a frozen scipy distribution costs ~1 ms a call).
    """

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.beta > 0 and math.isfinite(self.alpha + self.beta)):
            raise ValueError(f"Beta parameters must be positive and finite: {self}")

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        total = self.alpha + self.beta
        return self.alpha * self.beta / (total * total * (total + 1.0))

    def size_biased(self) -> Beta:
        """``Beta(alpha + 1, beta)``: ``x f(x) = mean * f'(x)`` (used for the exact risk)."""
        return Beta(self.alpha + 1.0, self.beta)

    def flipped(self) -> Beta:
        """The distribution of ``1 - p``."""
        return Beta(self.beta, self.alpha)

    def cdf(self, x: float) -> float:
        """``I_x(alpha, beta)``, the regularized incomplete beta function."""
        return float(special.betainc(self.alpha, self.beta, min(max(x, 0.0), 1.0)))

    def pdf(self, x: float) -> float:
        if not 0.0 < x < 1.0:
            return 0.0
        return math.exp(
            (self.alpha - 1.0) * math.log(x)
            + (self.beta - 1.0) * math.log1p(-x)
            - float(special.betaln(self.alpha, self.beta))
        )

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (scipy's inverse of the regularized incomplete beta).

        >>> Beta(2.0, 2.0).quantile(0.5)
        0.5
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        return float(special.betaincinv(self.alpha, self.beta, q))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval with probability ``level``."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        tail = (1.0 - level) / 2.0
        return self.quantile(tail), self.quantile(1.0 - tail)


@dataclass(frozen=True)
class Arm:
    """One variant's counts in one segment: ``impressions`` shown, ``clicks`` on them.

    A click is a clicked impression (the counters never count two clicks on
    one impression), so ``0 <= clicks <= impressions``.
    """

    name: str
    impressions: int
    clicks: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an arm needs a name")
        for label, value in (("impressions", self.impressions), ("clicks", self.clicks)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{label} of arm {self.name!r} must be an int, got {value!r}")
            object.__setattr__(self, label, int(value))  # a numpy int would not JSON-encode
        if not 0 <= self.clicks <= self.impressions:
            raise ValueError(
                f"arm {self.name!r}: need 0 <= clicks <= impressions, "
                f"got {self.clicks} clicks on {self.impressions} impressions"
            )

    @property
    def ctr(self) -> float | None:
        """Observed CTR, ``None`` without impressions."""
        return self.clicks / self.impressions if self.impressions else None

    def posterior(self, prior_a: float = 1.0, prior_b: float = 1.0) -> Beta:
        return Beta(prior_a + self.clicks, prior_b + self.impressions - self.clicks)

    def posterior_mean(self, prior_a: float = 1.0, prior_b: float = 1.0) -> float:
        return self.posterior(prior_a, prior_b).mean

    def credible_interval(
        self, level: float = 0.95, *, prior_a: float = 1.0, prior_b: float = 1.0
    ) -> tuple[float, float]:
        """Equal-tailed posterior interval of the CTR (exact Beta quantiles)."""
        return self.posterior(prior_a, prior_b).interval(level)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "impressions": self.impressions, "clicks": self.clicks}


def check_names(arms: Sequence[Arm]) -> None:
    """Refuse arms that share a name (every result is keyed by it)."""
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")
