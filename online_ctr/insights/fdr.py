"""Benjamini-Hochberg over every (group, attribute) pair asked about at once.

Dozens of audiences times dozens of attributes make hundreds of tests: at
p < 0.05 each, a few dozen "drivers" would be noise. BH keeps the expected
share of false ones among those flagged at ``q`` (scipy's adjustment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["DEFAULT_Q", "bh_q_values"]

#: the false-discovery rate flagged effects are held to
DEFAULT_Q = 0.05


def bh_q_values(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values): flag those at or below the chosen rate.

    >>> [round(q, 3) for q in bh_q_values([0.01, 0.04, 0.03, 0.5])]
    [0.04, 0.053, 0.053, 0.5]
    """
    if not p_values:
        return []
    adjusted = stats.false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")
    return [float(q) for q in adjusted]
