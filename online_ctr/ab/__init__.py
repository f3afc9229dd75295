"""Beta-Binomial maths of a visual A/B test: who wins, how sure, and is the split sound.

Every item can be shown with several visual variants (images), and the
counters keep impressions and clicks per item, variant and audience segment.
``GET /ab/{item_id}`` and the dashboard turn those counts into one decision
per segment that a person can act on (*ship variant b to mobile users in
DE*, or *keep testing, and here is why*); ``POST /ab/{item_id}/allocate``
picks the variant to show next and returns the probability it was picked
with, for ``Impression.propensity``. Everything is pure: counts in, numbers
out; no I/O. One concept per module, all re-exported here:

* :mod:`~online_ctr.ab.arm` — an arm's counts and its Beta posterior;
* :mod:`~online_ctr.ab.posterior` — chance to win and risk (exact or Monte Carlo);
* :mod:`~online_ctr.ab.srm` — sample ratio mismatch: was the split as intended;
* :mod:`~online_ctr.ab.decision` — the decision rule and its verdict;
* :mod:`~online_ctr.ab.allocation` — Thompson sampling with a propensity floor;
* :mod:`~online_ctr.ab.beta` — the Beta distribution and chi-square tail beneath them.

>>> verdict = decide([Arm("a", 20_000, 800), Arm("b", 20_000, 900)], segment="all")
>>> verdict.decision, verdict.winner
('winner', 'b')
"""

from __future__ import annotations

from online_ctr.ab.allocation import allocation_probabilities, thompson_allocate
from online_ctr.ab.arm import Arm
from online_ctr.ab.beta import Beta, chi2_sf, regularized_beta
from online_ctr.ab.decision import ArmStats, Decision, DecisionRule, Verdict, decide
from online_ctr.ab.posterior import (
    DEFAULT_DRAWS,
    MAX_EXACT_TERMS,
    chance_to_win,
    expected_loss,
    prob_beats,
)
from online_ctr.ab.srm import SrmResult, srm_check

__all__ = [
    "DEFAULT_DRAWS",
    "MAX_EXACT_TERMS",
    "Arm",
    "ArmStats",
    "Beta",
    "Decision",
    "DecisionRule",
    "SrmResult",
    "Verdict",
    "allocation_probabilities",
    "chance_to_win",
    "chi2_sf",
    "decide",
    "expected_loss",
    "prob_beats",
    "regularized_beta",
    "srm_check",
    "thompson_allocate",
]
