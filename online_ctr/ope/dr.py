"""Doubly robust: the reward model's value of the target plus an IPS correction of its error.

Per impression, ``sum_a pi(a|x) q(x, a) + w (r - q(x, shown))`` (Dudík,
Langford & Li 2011; OBP's ``DoublyRobust``, VW's ``--cb_type dr``). Unbiased
when the propensities are right whatever ``q`` is; the better ``q`` predicts
the clicks, the less of the reward's noise the weights blow up. ``q`` must
not have learned the impression it predicts (score before learning).
"""

from __future__ import annotations

from online_ctr.ope.estimate import Estimate, effective_sample_size, mean_interval
from online_ctr.ope.terms import Terms

__all__ = ["doubly_robust"]


def doubly_robust(terms: Terms) -> Estimate:
    """The DR estimate of the target's CTR, its bootstrap-t interval on the terms."""
    per_impression = terms.q_target + terms.weights * (terms.rewards - terms.q_shown)
    value, low, high = mean_interval(per_impression)
    return Estimate("dr", value, low, high, terms.n, effective_sample_size(terms.weights))
