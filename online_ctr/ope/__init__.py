"""Off-policy evaluation: what CTR another policy would have earned on logged impressions.

An impression that carries a ``propensity`` (the probability the shown
variant was chosen with, e.g. by ``POST /ab/{item_id}/allocate``) can be
reweighted to stand for a policy that was never run. Five estimators, each
with a 95% studentised-bootstrap interval on its per-impression
terms, the number of impressions and the effective sample size:

* :mod:`~online_ctr.ope.ips` — inverse propensity scoring (unbiased, noisy);
* :mod:`~online_ctr.ope.snips` — self-normalised IPS (a little biased, steadier);
* :mod:`~online_ctr.ope.dr` — doubly robust: the CTR model's prediction plus
  an IPS correction of its error (unbiased when the propensities are right);
* :mod:`~online_ctr.ope.sndr` — self-normalised DR (its correction divided by
  the weight mass);
* :mod:`~online_ctr.ope.dros` — DR with optimised shrinkage of the weights
  (less of the click's noise for a bounded bias; the interval widened by it).

DR's reward model ``q`` is the units' ``predicted`` (the served model) or,
passed as ``rewards_model``, :func:`~online_ctr.ope.cell_model.cross_fitted_rewards`:
shrunk cell click rates, cross-fitted so that ``q`` never saw its reward.

The rest, one concept each: :mod:`~online_ctr.ope.logged` (the logged unit),
:mod:`~online_ctr.ope.policies` (target policies), :mod:`~online_ctr.ope.terms`
(weights and the refusals), :mod:`~online_ctr.ope.estimate` (the result and
its interval), :mod:`~online_ctr.ope.evaluate` (all estimators at once).

Exceptions::

    ValueError
     └── OpeRefused            an estimate would mislead; ``reason`` says why
          ├── TooFewImpressions  fewer propensity-carrying impressions than the minimum
          └── NoOverlap          the target acts where the logging policy never does

Anchors: Open Bandit Pipeline's estimators (``obp.ope``) and Vowpal
Wabbit's ``--cb_type ips|dr``; the intervals are studentised-bootstrap ones, seeded
(checked for coverage in ``bench/insights_bench/ope.py``).

>>> from online_ctr.ope import LoggedImpression, UniformPolicy, evaluate
>>> units = [LoggedImpression("s", "i", ("a", "b"), "a", 0.5, 1.0, (0.6, 0.2)),
...          LoggedImpression("s", "i", ("a", "b"), "b", 0.5, 0.0, (0.6, 0.2))]
>>> report = evaluate(units, UniformPolicy(), min_impressions=2)
>>> report.estimates["ips"].value, report.logged_ctr
(0.5, 0.5)
"""

from __future__ import annotations

from online_ctr.ope.cell_model import DEFAULT_GROUP_FIELDS, CellModel, cross_fitted_rewards
from online_ctr.ope.dr import doubly_robust
from online_ctr.ope.dros import LAMBDA_GRID, dr_shrinkage, shrinkage_terms
from online_ctr.ope.errors import NoOverlap, OpeRefused, TooFewImpressions
from online_ctr.ope.estimate import (
    Estimate,
    bootstrap_t_interval,
    clt_interval,
    effective_sample_size,
)
from online_ctr.ope.evaluate import ESTIMATORS, OpeReport, evaluate
from online_ctr.ope.ips import ips
from online_ctr.ope.logged import LoggedImpression
from online_ctr.ope.policies import (
    GreedyPolicy,
    TargetPolicy,
    ThompsonPolicy,
    UniformPolicy,
    VariantPolicy,
    parse_policy,
    thompson_probabilities,
)
from online_ctr.ope.sndr import self_normalised_dr
from online_ctr.ope.snips import snips
from online_ctr.ope.terms import DEFAULT_MIN_IMPRESSIONS, Terms, prepare

__all__ = [
    "DEFAULT_GROUP_FIELDS",
    "DEFAULT_MIN_IMPRESSIONS",
    "ESTIMATORS",
    "LAMBDA_GRID",
    "CellModel",
    "Estimate",
    "GreedyPolicy",
    "LoggedImpression",
    "NoOverlap",
    "OpeRefused",
    "OpeReport",
    "TargetPolicy",
    "Terms",
    "ThompsonPolicy",
    "TooFewImpressions",
    "UniformPolicy",
    "VariantPolicy",
    "bootstrap_t_interval",
    "clt_interval",
    "cross_fitted_rewards",
    "doubly_robust",
    "dr_shrinkage",
    "effective_sample_size",
    "evaluate",
    "ips",
    "parse_policy",
    "prepare",
    "self_normalised_dr",
    "shrinkage_terms",
    "snips",
    "thompson_probabilities",
]
