"""Every estimator on one set of logs: the report ``bertctr ope`` prints.

>>> from online_ctr.ope.logged import LoggedImpression
>>> from online_ctr.ope.policies import VariantPolicy
>>> units = [LoggedImpression("s", "i", ("a", "b"), v, 0.5, r, (0.5, 0.5))
...          for v, r in [("a", 1.0), ("a", 0.0), ("b", 0.0), ("b", 1.0)]]
>>> report = evaluate(units, VariantPolicy("a"), min_impressions=4)
>>> report.estimates["snips"].value, report.estimates["dr"].value
(0.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from online_ctr.ope.dr import doubly_robust
from online_ctr.ope.dros import dr_shrinkage
from online_ctr.ope.estimate import Estimate
from online_ctr.ope.ips import ips
from online_ctr.ope.logged import LoggedImpression
from online_ctr.ope.policies import TargetPolicy
from online_ctr.ope.sndr import self_normalised_dr
from online_ctr.ope.snips import snips
from online_ctr.ope.terms import (
    DEFAULT_MAX_UNSUPPORTED_SHARE,
    DEFAULT_MIN_IMPRESSIONS,
    Terms,
    prepare,
)

__all__ = ["ESTIMATORS", "OpeReport", "evaluate"]

#: every estimator, by the name reports use
ESTIMATORS: dict[str, Callable[[Terms], Estimate]] = {
    "ips": ips,
    "snips": snips,
    "dr": doubly_robust,
    "sndr": self_normalised_dr,
    "dros": dr_shrinkage,
}


@dataclass(frozen=True)
class OpeReport:
    """The target's estimated CTR by each estimator, beside the CTR the logs earned."""

    policy: str
    n: int
    logged_ctr: float
    estimates: dict[str, Estimate]

    def as_dict(self) -> dict[str, Any]:
        """One JSON object: ``policy``, ``n``, ``logged_ctr`` and a block per estimator."""
        return {
            "policy": self.policy,
            "n": self.n,
            "logged_ctr": self.logged_ctr,
            "estimators": {name: e.as_dict() for name, e in self.estimates.items()},
        }


def evaluate(
    units: Sequence[LoggedImpression],
    policy: TargetPolicy,
    *,
    min_impressions: int = DEFAULT_MIN_IMPRESSIONS,
    max_unsupported_share: float = DEFAULT_MAX_UNSUPPORTED_SHARE,
    rewards_model: Sequence[Sequence[float]] | None = None,
) -> OpeReport:
    """Every estimator of ``policy`` on ``units``; refuses as :func:`.terms.prepare` does.

    ``rewards_model``: DR's ``q`` instead of the units' ``predicted`` (see ``prepare``).
    """
    terms = prepare(
        units,
        policy,
        min_impressions=min_impressions,
        max_unsupported_share=max_unsupported_share,
        rewards_model=rewards_model,
    )
    return OpeReport(
        policy=policy.name,
        n=terms.n,
        logged_ctr=float(np.mean(terms.rewards)),
        estimates={name: estimator(terms) for name, estimator in ESTIMATORS.items()},
    )
