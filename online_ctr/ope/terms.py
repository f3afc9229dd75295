"""The per-impression quantities every estimator needs, and the refusals.

For each logged impression ``i`` with target probabilities ``pi_i`` over its
candidates: the importance weight ``w_i = pi_i(shown) / propensity_i``, the
reward ``r_i``, the reward model's prediction of the shown variant
``q_i(shown)`` and its expectation under the target ``sum_a pi_i(a) q_i(a)``.
The estimators are then one line of numpy each.

Refusals (:mod:`~online_ctr.ope.errors`): fewer than ``min_impressions``
units, or the target putting more than ``max_unsupported_share`` of its mass
on variants the logging policy never shows in that context. Where a unit
carries the logging distribution the support is exact (probability > 0);
otherwise it is inferred: the variants shown at least once for the item in
these logs. A policy may also put mass outside the candidates (its
probabilities summing to less than 1, e.g. ``variant=v9`` on an item without
``v9``): that mass is unsupported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online_ctr.ope.errors import NoOverlap, TooFewImpressions
from online_ctr.ope.logged import LoggedImpression
from online_ctr.ope.policies import TargetPolicy

__all__ = ["DEFAULT_MAX_UNSUPPORTED_SHARE", "DEFAULT_MIN_IMPRESSIONS", "Terms", "prepare"]

#: fewer propensity-carrying impressions than this and no estimate is given
DEFAULT_MIN_IMPRESSIONS = 500
#: at most this share of the target's mass may fall outside the logging support
DEFAULT_MAX_UNSUPPORTED_SHARE = 0.0
#: float slack when comparing probability sums
_EPS = 1e-9

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Terms:
    """Aligned arrays, one entry per logged impression (see the module docstring)."""

    weights: FloatArray
    rewards: FloatArray
    q_shown: FloatArray
    q_target: FloatArray

    @property
    def n(self) -> int:
        return len(self.weights)


def _observed_support(units: Sequence[LoggedImpression]) -> set[tuple[str, str]]:
    return {(u.item_id, u.shown) for u in units}


def prepare(
    units: Sequence[LoggedImpression],
    policy: TargetPolicy,
    *,
    min_impressions: int = DEFAULT_MIN_IMPRESSIONS,
    max_unsupported_share: float = DEFAULT_MAX_UNSUPPORTED_SHARE,
    rewards_model: Sequence[Sequence[float]] | None = None,
) -> Terms:
    """The :class:`Terms` of ``units`` under ``policy``, or a refusal.

    ``rewards_model``, aligned with ``units`` and their candidates, replaces
    ``predicted`` as DR's ``q`` (e.g. :func:`.cell_model.cross_fitted_rewards`);
    the policy still reads ``predicted`` (``model`` stays the served model's choice).

    Raises
    ------
    TooFewImpressions
        Fewer than ``min_impressions`` units.
    NoOverlap
        The target's mass outside the logging support exceeds
        ``max_unsupported_share`` (averaged over the units), or the target
        never agrees with a logged choice (every weight zero).
    """
    if len(units) < max(min_impressions, 2):
        raise TooFewImpressions(len(units), max(min_impressions, 2))
    observed = _observed_support(units)
    n = len(units)
    weights = np.empty(n)
    q_shown = np.empty(n)
    q_target = np.empty(n)
    rewards = np.fromiter((u.reward for u in units), dtype=np.float64, count=n)
    unsupported = 0.0
    if rewards_model is not None and len(rewards_model) != n:
        raise ValueError(f"rewards_model has {len(rewards_model)} rows for {n} units")
    for i, u in enumerate(units):
        pi = policy.probabilities(u)
        q = np.asarray(u.predicted if rewards_model is None else rewards_model[i], dtype=np.float64)
        if len(q) != len(u.candidates):
            raise ValueError(f"rewards_model row {i} has {len(q)} values for {len(u.candidates)}")
        if u.logging is not None:
            supported = np.asarray(u.logging) > 0
        else:
            supported = np.array([(u.item_id, c) in observed for c in u.candidates])
        unsupported += max(0.0, 1.0 - float(pi.sum())) + float(pi[~supported].sum())
        k = u.shown_index
        weights[i] = pi[k] / u.propensity
        q_shown[i] = q[k]
        q_target[i] = float(pi @ q)
    share = unsupported / n
    if share > max_unsupported_share + _EPS:
        raise NoOverlap(policy.name, share, f"at most {100 * max_unsupported_share:.1f}% allowed")
    if not np.any(weights > 0):
        raise NoOverlap(policy.name, 1.0, "it never chooses a variant that was logged")
    return Terms(weights=weights, rewards=rewards, q_shown=q_shown, q_target=q_target)
