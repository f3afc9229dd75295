"""Thompson sampling: which arm to show next, and the probability it was picked with.

Thompson sampling shows each arm with its posterior probability of being the
best: that *is* its chance to win (probability matching,
:func:`~online_ctr.ab.posterior.chance_to_win`). The arm is drawn from those
probabilities, mixed with a uniform floor ``min_propensity``, so the
propensity returned is exactly the probability the choice was made with,
which inverse-propensity estimators need (``Impression.propensity``);
drawing one posterior sample per arm and taking the largest is the same
policy in distribution.

>>> import numpy as np
>>> from online_ctr.ab.arm import Arm
>>> arms = [Arm("a", 1000, 30), Arm("b", 1000, 50)]
>>> {k: round(p, 3) for k, p in allocation_probabilities(arms, min_propensity=0.05).items()}
{'a': 0.06, 'b': 0.94}
>>> name, propensity = thompson_allocate(arms, np.random.default_rng(0), min_propensity=0.05)
>>> name in ("a", "b"), round(propensity, 3) in (0.06, 0.94)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from online_ctr.ab.arm import Arm
from online_ctr.ab.posterior import DEFAULT_DRAWS, chance_to_win

__all__ = ["allocation_probabilities", "thompson_allocate"]


def allocation_probabilities(
    arms: Sequence[Arm],
    *,
    min_propensity: float = 0.0,
    prior_a: float = 1.0,
    prior_b: float = 1.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> dict[str, float]:
    """The Thompson-sampling policy: the probability of showing each arm next (sums to 1).

    ``min_propensity + (1 - k * min_propensity) * chance_to_win`` for ``k``
    arms: probability matching, mixed with a uniform floor. The floor (0 by
    default, at most ``1 / k``) keeps every arm shown now and then, so an arm
    that fell behind early can still recover, and inverse-propensity weights
    stay bounded by ``1 / min_propensity``. The counts change slowly, so a
    server allocating many impressions may compute this once per refresh and
    draw from it.
    """
    if not arms:
        raise ValueError("no arms to allocate")
    k = len(arms)
    if not 0.0 <= min_propensity <= 1.0 / k:
        raise ValueError(f"min_propensity must be in [0, 1/{k}], got {min_propensity}")
    ctw = chance_to_win(arms, draws, seed, prior_a=prior_a, prior_b=prior_b)
    probs = np.array([min_propensity + (1.0 - k * min_propensity) * ctw[a.name] for a in arms])
    probs = np.clip(probs, 0.0, 1.0)
    probs /= probs.sum()
    return {arm.name: float(p) for arm, p in zip(arms, probs, strict=True)}


def thompson_allocate(
    arms: Sequence[Arm],
    rng: np.random.Generator,
    *,
    min_propensity: float = 0.0,
    prior_a: float = 1.0,
    prior_b: float = 1.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> tuple[str, float]:
    """Pick the arm to show next by Thompson sampling; return it and its propensity.

    The arm is drawn with ``rng`` from :func:`allocation_probabilities`
    (same keyword arguments). The chance to win inside is exact for two arms
    and a Monte Carlo estimate (``draws``, ``seed``) for more; either way the
    propensity returned is the exact probability with which the choice was
    made, in [0, 1], which is what ``Impression.propensity`` must log.
    """
    probs = allocation_probabilities(
        arms,
        min_propensity=min_propensity,
        prior_a=prior_a,
        prior_b=prior_b,
        draws=draws,
        seed=seed,
    )
    p = np.array(list(probs.values()))
    chosen = int(rng.choice(len(arms), p=p))
    return arms[chosen].name, min(max(float(p[chosen]), 0.0), 1.0)
