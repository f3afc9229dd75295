"""An arm of a visual A/B test: one variant's counts in one segment, and its posterior.

Each arm has an unknown CTR ``p`` with a ``Beta(prior_a, prior_b)`` prior,
``Beta(1, 1)`` (uniform) by default; after ``n`` impressions and ``c``
clicks its posterior is ``Beta(prior_a + c, prior_b + n - c)``. Credible
intervals are equal-tailed, from exact Beta quantiles
(:meth:`~online_ctr.ab.beta.Beta.quantile`), not Monte Carlo.

>>> arm = Arm("b", impressions=1000, clicks=40)
>>> arm.ctr, arm.posterior()
(0.04, Beta(alpha=41.0, beta=961.0))
>>> low, high = arm.credible_interval(0.95)
>>> bool(0.028 < low < 0.04 < high < 0.055)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from online_ctr.ab.beta import Beta

__all__ = ["Arm", "check_names"]


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
