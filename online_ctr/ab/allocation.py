"""Thompson sampling: which arm to show next, and the probability it was picked with.

Thompson sampling shows each arm with its posterior probability of being the
best: that *is* its chance to win (probability matching,
:func:`~online_ctr.ab.posterior.chance_to_win`). The arm is drawn from those
probabilities, mixed with a uniform floor ``min_propensity``, so the
propensity returned is exactly the probability the choice was made with,
which inverse-propensity estimators need (``Impression.propensity``);
drawing one posterior sample per arm and taking the largest is the same
policy in distribution.

An arm never shown (no impressions in the segment: a new variant, or a
name mistyped by the caller) has only its prior, which at CTRs of a few
percent can make its chance to win larger than that of an arm measured
over thousands of impressions. Such arms together get at most
``exploration_share`` (:data:`DEFAULT_EXPLORATION_SHARE`, 10%) of the
Thompson probabilities, in proportion to their chance to win; the arms with
data share the rest. Enough to learn about a new variant, too little to
send most traffic to a typo.

>>> import numpy as np
>>> from online_ctr.ab.arm import Arm
>>> arms = [Arm("a", 1000, 30), Arm("b", 1000, 50)]
>>> {k: round(p, 3) for k, p in allocation_probabilities(arms, min_propensity=0.05).items()}
{'a': 0.06, 'b': 0.94}
>>> name, propensity = thompson_allocate(arms, np.random.default_rng(0), min_propensity=0.05)
>>> name in ("a", "b"), round(propensity, 3) in (0.06, 0.94)
(True, True)
>>> {k: round(p, 3) for k, p in allocation_probabilities([Arm("v0", 2000, 60), Arm("zz", 0, 0)],
...     prior_a=3.0, prior_b=97.0).items()}
{'v0': 0.9, 'zz': 0.1}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from online_ctr.ab.arm import Arm
from online_ctr.ab.posterior import DEFAULT_DRAWS, FloatArray, chance_to_win

__all__ = ["DEFAULT_EXPLORATION_SHARE", "allocation_probabilities", "thompson_allocate"]

#: at most this share of the Thompson probabilities goes to arms never shown
DEFAULT_EXPLORATION_SHARE = 0.1


def _cap_unseen(arms: Sequence[Arm], probs: FloatArray, share: float) -> FloatArray:
    """Scale the arms without impressions down to ``share`` in all, if they had more."""
    unseen = np.array([a.impressions == 0 for a in arms])
    if unseen.all() or not unseen.any() or probs[unseen].sum() <= share:
        return probs
    out = probs.copy()
    out[unseen] *= share / probs[unseen].sum()
    seen_total = probs[~unseen].sum()
    if seen_total > 0:
        out[~unseen] *= (1.0 - share) / seen_total
    else:  # every arm with data is certain to lose: they share the rest equally
        out[~unseen] = (1.0 - share) / int((~unseen).sum())
    return out


def allocation_probabilities(
    arms: Sequence[Arm],
    *,
    min_propensity: float = 0.0,
    prior_a: float = 1.0,
    prior_b: float = 1.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    exploration_share: float = DEFAULT_EXPLORATION_SHARE,
) -> dict[str, float]:
    """The Thompson-sampling policy: the probability of showing each arm next (sums to 1).

    ``min_propensity + (1 - k * min_propensity) * q`` for ``k`` arms, ``q``
    the chance to win with the arms never shown capped at
    ``exploration_share`` in all (1 turns the cap off): probability
    matching, mixed with a uniform floor. The floor (0 by
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
    if not 0.0 <= exploration_share <= 1.0:
        raise ValueError(f"exploration_share must be in [0, 1], got {exploration_share}")
    ctw = chance_to_win(arms, draws, seed, prior_a=prior_a, prior_b=prior_b)
    matched = _cap_unseen(arms, np.array([ctw[a.name] for a in arms]), exploration_share)
    probs = min_propensity + (1.0 - k * min_propensity) * matched
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
    exploration_share: float = DEFAULT_EXPLORATION_SHARE,
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
        exploration_share=exploration_share,
    )
    p = np.array(list(probs.values()))
    chosen = int(rng.choice(len(arms), p=p))
    return arms[chosen].name, min(max(float(p[chosen]), 0.0), 1.0)
