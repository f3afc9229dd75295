"""How many more impressions per arm a decision needs, at the effect seen so far.

The normal-approximation sample size of a two-sided two-proportion test, the
figure every A/B calculator gives: to tell CTRs ``p1`` and ``p2`` apart at
level ``alpha`` with probability ``power``, each arm needs ::

    n = (z(1 - alpha/2) sqrt(2 pbar (1 - pbar)) + z(power) sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2

impressions, ``pbar = (p1 + p2) / 2``, ``q = 1 - p``, ``z`` the standard
normal quantile. The decision rule puts in the posterior means of the
control and of the best other arm (the effect as it stands, shrunk by the
prior), ``alpha = 1 - credible_level`` (0.05) and ``power`` 0.8, and
reports ``n`` minus the impressions the less-shown of the two already has.
It is a planning figure, not a promise: the effect itself is uncertain, and
a smaller true effect needs more.

>>> round(two_proportion_sample_size(0.03, 0.036, alpha=0.05, power=0.8))
13914
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import special

__all__ = ["SampleSize", "sample_size", "two_proportion_sample_size"]


def two_proportion_sample_size(p1: float, p2: float, *, alpha: float, power: float) -> float:
    """Impressions per arm to detect ``p1`` vs ``p2`` (formula in the module docstring).

    Infinite when ``p1 == p2``.
    """
    if not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0):
        raise ValueError(f"CTRs must be in (0, 1), got {p1} and {p2}")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if p1 == p2:
        return math.inf
    z_alpha = float(special.ndtri(1.0 - alpha / 2.0))
    z_power = float(special.ndtri(power))
    pbar = (p1 + p2) / 2.0
    spread = z_alpha * math.sqrt(2.0 * pbar * (1.0 - pbar)) + z_power * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return spread * spread / ((p1 - p2) ** 2)


@dataclass(frozen=True)
class SampleSize:
    """Impressions per arm to tell ``arm`` from ``control`` at the current effect."""

    control: str
    arm: str
    relative_effect: float
    needed_per_arm: int
    more_per_arm: int
    alpha: float
    power: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_size(
    control: str,
    control_ctr: float,
    control_impressions: int,
    arm: str,
    arm_ctr: float,
    arm_impressions: int,
    *,
    alpha: float,
    power: float,
    min_effect: float,
) -> SampleSize | None:
    """The sample size at the effect ``arm_ctr / control_ctr - 1``; ``None`` below ``min_effect``.

    An effect below ``min_effect`` (relative) is treated as none: there is
    nothing to size for, and the figure would be astronomically large.
    """
    effect = arm_ctr / control_ctr - 1.0
    if abs(effect) < min_effect:
        return None
    needed = two_proportion_sample_size(control_ctr, arm_ctr, alpha=alpha, power=power)
    if not math.isfinite(needed):
        return None
    per_arm = math.ceil(needed)
    return SampleSize(
        control=control,
        arm=arm,
        relative_effect=effect,
        needed_per_arm=per_arm,
        more_per_arm=max(per_arm - min(control_impressions, arm_impressions), 0),
        alpha=alpha,
        power=power,
    )
