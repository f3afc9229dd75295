"""Sample ratio mismatch: were impressions split across the arms as intended?

A chi-square goodness-of-fit test of the impressions per arm against the
shares the allocation meant to give them. A mismatch means the assignment or
the logging is broken, and then no CTR comparison can be trusted, however
significant it looks: the decision rule (:mod:`online_ctr.ab.decision`)
blocks every verdict on it.

>>> from online_ctr.ab.arm import Arm
>>> srm_check([Arm("a", 5000, 0), Arm("b", 5050, 0)]).mismatch
False
>>> result = srm_check([Arm("a", 5000, 0), Arm("b", 5400, 0)])
>>> result.mismatch, round(result.statistic, 2), result.dof
(True, 15.38, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import special

from online_ctr.ab.arm import Arm, check_names

__all__ = ["SrmResult", "srm_check"]


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness of fit of the impressions per arm to the intended shares."""

    statistic: float
    dof: int
    p_value: float
    mismatch: bool
    expected_shares: tuple[float, ...]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["expected_shares"] = list(self.expected_shares)
        out["statistic"] = self.statistic if math.isfinite(self.statistic) else None
        return out


def _shares(
    arms: Sequence[Arm], expected_shares: Mapping[str, float] | Sequence[float] | None
) -> list[float]:
    if expected_shares is None:
        raw = [1.0] * len(arms)
    elif isinstance(expected_shares, Mapping):
        missing = [a.name for a in arms if a.name not in expected_shares]
        if missing:
            raise ValueError(f"expected_shares has no share for arms {missing}")
        raw = [float(expected_shares[a.name]) for a in arms]
    else:
        raw = [float(s) for s in expected_shares]
        if len(raw) != len(arms):
            raise ValueError(f"{len(raw)} expected shares for {len(arms)} arms")
    if any(not math.isfinite(s) or s < 0 for s in raw) or (arms and sum(raw) <= 0):
        raise ValueError(f"expected shares must be finite, >= 0 and not all 0: {raw}")
    total = sum(raw)
    return [s / total for s in raw] if total else raw


def srm_check(
    arms: Sequence[Arm],
    expected_shares: Mapping[str, float] | Sequence[float] | None = None,
    *,
    threshold: float = 0.001,
) -> SrmResult:
    """Sample ratio mismatch: were impressions split across arms as intended?

    ``expected_shares`` (by arm name, or in the order of ``arms``; normalised)
    defaults to an equal split. Under an adaptive allocation
    (:func:`~online_ctr.ab.allocation.thompson_allocate`) pass each arm's mean
    logged propensity over the period instead: that is the share it was meant
    to get. Pearson's
    ``sum (observed - expected)^2 / expected`` on ``k`` arms with a positive
    share has ``k - 1`` degrees of freedom; ``mismatch`` when the p-value is
    below ``threshold`` (0.001: the check runs on every dashboard refresh, so
    it must rarely cry wolf). Impressions on an arm meant to get none are an
    infinite statistic. Without impressions or with one arm there is nothing
    to test (p-value 1).
    """
    check_names(arms)
    shares = _shares(arms, expected_shares)
    total = sum(a.impressions for a in arms)
    cells = [(a.impressions, s) for a, s in zip(arms, shares, strict=True) if s > 0]
    dof = max(len(cells) - 1, 0)
    if any(a.impressions > 0 and s == 0 for a, s in zip(arms, shares, strict=True)):
        return SrmResult(math.inf, dof, 0.0, True, tuple(shares), threshold)
    if total == 0 or dof < 1:
        return SrmResult(0.0, dof, 1.0, False, tuple(shares), threshold)
    statistic = math.fsum((n - total * s) ** 2 / (total * s) for n, s in cells)
    p_value = float(special.chdtrc(dof, statistic))  # chi-square upper tail (scipy)
    return SrmResult(statistic, dof, p_value, p_value < threshold, tuple(shares), threshold)
