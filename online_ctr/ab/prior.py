"""The prior of every arm's CTR: empirical Bayes from the pooled CTR of its item or segment.

A flat ``Beta(1, 1)`` prior says a CTR of 50% is as likely as one of 3%. At
the CTRs of a few percent that images get, it flatters small arms: 0 clicks
in 13 impressions has the posterior mean 1/15 = 6.67%, above a variant
measured at 3% over thousands, and so looks like the likeliest winner. The
prior here is centred on what the arms of the same item (or segment) showed
together, and is worth a stated number of impressions::

    prior = Beta(m * s, (1 - m) * s)

* ``m``, the pooled CTR: ``(C + a0) / (N + a0 + b0)`` for the clicks ``C``
  and impressions ``N`` of all arms together, smoothed by a parent prior
  ``Beta(a0, b0)`` so that it is never 0 or 1. The item's parent is the
  base prior (the decision rule's ``prior_a``, ``prior_b``: ``Beta(1, 1)``);
  a segment's parent is its item's prior, so a thin segment borrows the
  item's CTR and a busy one has its own.
* ``s``, the strength in pseudo-impressions: ``min(k, max(N, s0))`` with
  ``k`` the stated strength (:data:`DEFAULT_PRIOR_STRENGTH`, 100) and ``s0``
  the parent's strength: never worth more impressions than it was pooled
  from, and a scope with no impressions keeps its parent's prior.

At a pooled CTR of 3%, ``k = 100`` is ``Beta(3, 97)``: 3 pseudo-clicks in
100 pseudo-impressions, a prior sure of the order of magnitude (its 95%
interval is 0.6% to 7.4%) and of little else. An arm's own data outweighs it
after 100 impressions; at 10,000 it holds 1% of the weight. Sharing one prior
shrinks every arm towards the common mean, which is what stops a small arm
from looking like a winner; the data is used twice (in the pool and in its
own arm), the usual empirical-Bayes approximation, bounded by the cap on ``s``.

>>> from online_ctr.ab.arm import Arm
>>> item = pooled_prior([Arm("v0", 2000, 60), Arm("v1", 13, 0)], source="item pooled")
>>> round(item.mean, 4), item.strength, item.source
(0.0303, 100.0, 'item pooled')
>>> round(Arm("v1", 13, 0).posterior_mean(item.alpha, item.beta), 4)  # no longer 6.67%
0.0268
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from online_ctr.ab.arm import Arm

__all__ = ["DEFAULT_PRIOR_STRENGTH", "UNIFORM", "Prior", "pooled_prior"]

#: pseudo-impressions the pooled prior is worth at most (see the module docstring)
DEFAULT_PRIOR_STRENGTH = 100.0


@dataclass(frozen=True)
class Prior:
    """``Beta(mean * strength, (1 - mean) * strength)``, and where it came from."""

    mean: float
    strength: float
    source: str

    def __post_init__(self) -> None:
        if not (0.0 < self.mean < 1.0 and self.strength > 0.0):
            raise ValueError(f"a prior needs 0 < mean < 1 and strength > 0: {self}")

    @classmethod
    def of_beta(cls, a: float, b: float, source: str) -> Prior:
        """The prior ``Beta(a, b)`` under this parametrisation."""
        return cls(a / (a + b), a + b, source)

    @property
    def alpha(self) -> float:
        return self.mean * self.strength

    @property
    def beta(self) -> float:
        return (1.0 - self.mean) * self.strength

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "strength": self.strength,
            "alpha": self.alpha,
            "beta": self.beta,
            "source": self.source,
        }


#: ``Beta(1, 1)``: the base prior, before anything is pooled
UNIFORM = Prior(0.5, 2.0, "uniform")


def pooled_prior(
    arms: Sequence[Arm],
    *,
    strength: float = DEFAULT_PRIOR_STRENGTH,
    parent: Prior = UNIFORM,
    source: str = "pooled",
) -> Prior:
    """The empirical-Bayes prior of ``arms``' scope (item or segment), as documented above.

    ``strength`` 0 turns pooling off: the ``parent`` is returned as it is
    (a fixed prior, as before empirical Bayes).
    """
    if strength < 0:
        raise ValueError(f"prior strength must be >= 0, got {strength}")
    if strength == 0:
        return parent
    clicks = sum(a.clicks for a in arms)
    impressions = sum(a.impressions for a in arms)
    mean = (clicks + parent.alpha) / (impressions + parent.strength)
    return Prior(mean, min(strength, max(float(impressions), parent.strength)), source)
