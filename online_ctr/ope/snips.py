"""Self-normalised IPS: ``sum w_i r_i / sum w_i``.

Dividing by the realised weight mass instead of ``n`` trades a bias of
order ``1/n`` for much less variance, and keeps the estimate inside the
range of the rewards. Its interval is the delta method's: the ratio's
standard error is that of the mean of ``w_i (r_i - V) / mean(w)``, and the
interval is the bootstrap-t interval of that mean (zero) shifted to ``V``.
"""

from __future__ import annotations

import numpy as np

from online_ctr.ope.estimate import Estimate, bootstrap_t_interval, effective_sample_size
from online_ctr.ope.terms import Terms

__all__ = ["snips"]


def snips(terms: Terms) -> Estimate:
    """The SNIPS estimate of the target's CTR, with its delta-method interval."""
    w, r = terms.weights, terms.rewards
    mean_w = float(np.mean(w))
    value = float(np.sum(w * r) / np.sum(w))
    influence = w * (r - value) / mean_w  # the ratio's linearisation, one term per impression
    low, high = bootstrap_t_interval(influence - np.mean(influence))
    low, high = value + low, value + high
    return Estimate("snips", value, low, high, terms.n, effective_sample_size(w))
