"""Inverse propensity scoring: the mean of ``w_i r_i``.

Unbiased whenever the logged propensities are the true ones and the target
acts only where the logger does; its variance grows with the weights (a
target that disagrees with a cautious logger). VW's ``--cb_type ips``.
"""

from __future__ import annotations

from online_ctr.ope.estimate import Estimate, effective_sample_size, mean_interval
from online_ctr.ope.terms import Terms

__all__ = ["ips"]


def ips(terms: Terms) -> Estimate:
    """The IPS estimate of the target's CTR, with a bootstrap-t interval on ``w_i r_i``."""
    value, low, high = mean_interval(terms.weights * terms.rewards)
    return Estimate("ips", value, low, high, terms.n, effective_sample_size(terms.weights))
