"""Relative uplift of an arm over the control arm, with its credible interval.

Experimenters read a test as *b is 8% better than the control, somewhere
between +1% and +15%*. For posteriors ``p_c`` (control) and ``p`` (arm):

* ``estimate``: ``E[p] / E[p_c] - 1``, the ratio of the posterior means
  (``E[p / p_c]`` is infinite when the control has seen nothing);
* ``ci_low``, ``ci_high``: the equal-tailed ``level`` interval of
  ``p / p_c - 1``, from ``draws`` seeded Monte Carlo draws of both Beta
  posteriors (20,000 by default: the ends are the 2.5% and 97.5% sample
  quantiles, each within about 0.2 percentage points of probability);
* ``chance_to_beat_control``: ``P(p > p_c)``, exact
  (:func:`~online_ctr.ab.posterior.prob_beats`). The interval excludes 0
  exactly when this is outside ``[(1 - level) / 2, (1 + level) / 2]``, up to
  the Monte Carlo error of the interval; the decision rule uses the exact
  probability.

>>> from online_ctr.ab.arm import Beta
>>> up = relative_uplift(Beta(301.0, 9701.0), Beta(361.0, 9641.0), level=0.95)
>>> round(up.estimate, 3), round(up.chance_to_beat_control, 3)
(0.199, 0.991)
>>> bool(0.02 < up.ci_low < up.estimate < up.ci_high < 0.41)
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from online_ctr.ab.arm import Beta
from online_ctr.ab.posterior import DEFAULT_DRAWS, prob_beats

__all__ = ["Uplift", "relative_uplift"]


@dataclass(frozen=True)
class Uplift:
    """``p / p_control - 1``: its estimate, credible interval and chance to be above 0."""

    estimate: float
    ci_low: float
    ci_high: float
    chance_to_beat_control: float
    level: float

    def excludes_zero(self) -> bool:
        """Whether the ``level`` interval lies wholly on one side of 0 (exact probability)."""
        tail = (1.0 - self.level) / 2.0
        return not tail < self.chance_to_beat_control < 1.0 - tail

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_uplift(
    control: Beta,
    arm: Beta,
    *,
    level: float = 0.95,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> Uplift:
    """The uplift of ``arm`` over ``control`` (see the module docstring); deterministic per seed."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    rng = np.random.default_rng(seed)
    p_control = rng.beta(control.alpha, control.beta, size=draws)
    p_arm = rng.beta(arm.alpha, arm.beta, size=draws)
    # a tiny alpha can draw an exact 0; keep the ratio finite
    ratio = p_arm / np.maximum(p_control, np.finfo(np.float64).tiny) - 1.0
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratio, [tail, 1.0 - tail])
    return Uplift(
        estimate=arm.mean / control.mean - 1.0,
        ci_low=float(low),
        ci_high=float(high),
        chance_to_beat_control=prob_beats(control, arm),
        level=level,
    )
