"""Beta-Binomial maths of a visual A/B test: who wins, by how much, how sure, is the split sound.

Every item can be shown with several visual variants (images), and the
counters keep impressions and clicks per item, variant and audience segment.
``GET /ab/{item_id}`` and the dashboard turn those counts into one decision
per segment that a person can act on (*ship variant b to mobile users in
DE: +8% over the control*, or *keep testing, about 4,000 more impressions
per arm*); ``POST /ab/{item_id}/allocate`` picks the variant to show next and
returns the probability it was picked with, for ``Impression.propensity``.
Everything is pure: counts in, numbers out; no I/O. The special functions
(Beta quantiles, the regularized incomplete beta, the chi-square tail, the
normal quantile) are scipy's. One concept per module, all re-exported here:

* :mod:`~online_ctr.ab.arm` — an arm's counts and its Beta posterior;
* :mod:`~online_ctr.ab.prior` — the empirical-Bayes prior from the pooled CTR;
* :mod:`~online_ctr.ab.posterior` — chance to win and risk (exact or Monte Carlo);
* :mod:`~online_ctr.ab.uplift` — relative uplift over the control, with its interval;
* :mod:`~online_ctr.ab.sample_size` — how many more impressions the effect needs;
* :mod:`~online_ctr.ab.srm` — sample ratio mismatch: was the split as intended;
* :mod:`~online_ctr.ab.decision` — the decision rule and its verdict;
* :mod:`~online_ctr.ab.allocation` — Thompson sampling with a propensity floor
  and a bounded share for arms never shown.

>>> verdict = decide([Arm("a", 20_000, 800), Arm("b", 20_000, 900)], segment="all")
>>> verdict.decision, verdict.winner, verdict.control
('winner', 'b', 'a')
"""

from __future__ import annotations

from online_ctr.ab.allocation import (
    DEFAULT_EXPLORATION_SHARE,
    allocation_probabilities,
    thompson_allocate,
)
from online_ctr.ab.arm import Arm, Beta
from online_ctr.ab.decision import ArmStats, Decision, DecisionRule, Verdict, decide
from online_ctr.ab.posterior import (
    DEFAULT_DRAWS,
    MAX_EXACT_TERMS,
    chance_to_win,
    expected_loss,
    prob_beats,
)
from online_ctr.ab.prior import DEFAULT_PRIOR_STRENGTH, UNIFORM, Prior, pooled_prior
from online_ctr.ab.sample_size import SampleSize, sample_size, two_proportion_sample_size
from online_ctr.ab.srm import SrmResult, srm_check
from online_ctr.ab.uplift import Uplift, relative_uplift

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_EXPLORATION_SHARE",
    "DEFAULT_PRIOR_STRENGTH",
    "MAX_EXACT_TERMS",
    "UNIFORM",
    "Arm",
    "ArmStats",
    "Beta",
    "Decision",
    "DecisionRule",
    "Prior",
    "SampleSize",
    "SrmResult",
    "Uplift",
    "Verdict",
    "allocation_probabilities",
    "chance_to_win",
    "decide",
    "expected_loss",
    "pooled_prior",
    "prob_beats",
    "relative_uplift",
    "sample_size",
    "srm_check",
    "thompson_allocate",
    "two_proportion_sample_size",
]
