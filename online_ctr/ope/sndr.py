"""Self-normalised doubly robust: DR whose correction is divided by the weight mass.

Per impression DR adds ``w (r - q(x, shown))``; SNDR replaces the mean of
those corrections by ``sum w (r - q) / sum w`` (OBP's
``SelfNormalizedDoublyRobust``; Kallus & Uehara 2019). Like SNIPS it trades
a bias of order ``1/n`` for less variance when the realised weight mass
strays from ``n``. Its interval is the delta method's: the bootstrap-t
interval of the linearised terms ``q_target + w (r - q - C) / mean(w)``,
``C`` the normalised correction, shifted to the estimate.
"""

from __future__ import annotations

import numpy as np

from online_ctr.ope.estimate import Estimate, bootstrap_t_interval, effective_sample_size
from online_ctr.ope.terms import Terms

__all__ = ["self_normalised_dr"]


def self_normalised_dr(terms: Terms) -> Estimate:
    """The SNDR estimate of the target's CTR, with its delta-method interval."""
    w = terms.weights
    residual = terms.rewards - terms.q_shown
    correction = float(np.sum(w * residual) / np.sum(w))
    value = float(np.mean(terms.q_target)) + correction
    influence = terms.q_target + w * (residual - correction) / float(np.mean(w))
    low, high = bootstrap_t_interval(influence - np.mean(influence))
    return Estimate("sndr", value, value + low, value + high, terms.n, effective_sample_size(w))
