"""Target policies: the probability each candidate variant would be shown, per logged context.

A policy answers for one :class:`~online_ctr.ope.logged.LoggedImpression`
with an array aligned with its candidates. It may sum to less than 1: the
rest is mass on variants that are not candidates there (``variant=v9`` on an
item without ``v9``), which no log can evaluate (see ``terms.prepare``).

* :class:`UniformPolicy` — every candidate equally (``uniform``);
* :class:`VariantPolicy` — always one named variant (``variant=NAME``);
* :class:`GreedyPolicy` — the CTR model's best candidate (``model``);
* :class:`ThompsonPolicy` — what ``POST /ab/{item_id}/allocate`` would do
  with the logs' counts per segment and item (``thompson``), through
  :func:`online_ctr.ab.allocation.allocation_probabilities`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from online_ctr.ab.allocation import DEFAULT_EXPLORATION_SHARE, allocation_probabilities
from online_ctr.ab.arm import Arm
from online_ctr.ab.decision import DecisionRule
from online_ctr.ope.logged import LoggedImpression

__all__ = [
    "POLICY_NAMES",
    "GreedyPolicy",
    "TargetPolicy",
    "ThompsonPolicy",
    "UniformPolicy",
    "VariantPolicy",
    "parse_policy",
    "thompson_probabilities",
]

FloatArray = npt.NDArray[np.float64]
#: the spellings :func:`parse_policy` accepts
POLICY_NAMES = ("model", "thompson", "uniform", "variant=NAME")
#: Monte Carlo draws of the chance to win (more than two arms): ~1 ms a context
THOMPSON_DRAWS = 2000


class TargetPolicy(Protocol):
    """What a policy to evaluate must answer."""

    @property
    def name(self) -> str: ...

    def probabilities(self, unit: LoggedImpression) -> FloatArray:
        """The probability of showing each of ``unit.candidates`` in ``unit``'s context."""
        ...


class UniformPolicy:
    """Every candidate variant with the same probability."""

    name = "uniform"

    def probabilities(self, unit: LoggedImpression) -> FloatArray:
        k = len(unit.candidates)
        return np.full(k, 1.0 / k)


class VariantPolicy:
    """Always the variant ``variant``; nothing it can evaluate where an item lacks it."""

    def __init__(self, variant: str) -> None:
        if not variant:
            raise ValueError("variant=NAME needs a name")
        self.variant = variant
        self.name = f"variant={variant}"

    def probabilities(self, unit: LoggedImpression) -> FloatArray:
        return np.array([1.0 if c == self.variant else 0.0 for c in unit.candidates])


class GreedyPolicy:
    """The candidate the CTR model predicts best (ties shared equally)."""

    name = "model"

    def probabilities(self, unit: LoggedImpression) -> FloatArray:
        q = np.asarray(unit.predicted, dtype=np.float64)
        best = (q == q.max()).astype(np.float64)
        out: FloatArray = best / best.sum()
        return out


def thompson_probabilities(
    arms: Sequence[tuple[str, int, int]],
    *,
    min_propensity: float = 0.0,
    draws: int = THOMPSON_DRAWS,
    seed: int = 0,
) -> dict[str, float]:
    """Thompson sampling's probabilities over ``(name, impressions, clicks)`` arms.

    The allocate endpoint's maths: the arms' pooled (empirical-Bayes) prior
    of the decision rule, a bounded share for arms never shown, a uniform
    floor ``min_propensity``. Plain tuples in, so the simulator (which may
    not import this package) can take it as its logging policy.

    >>> probs = thompson_probabilities([("a", 1000, 10), ("b", 1000, 60)], min_propensity=0.05)
    >>> round(probs["a"], 3), round(probs["b"], 3)
    (0.05, 0.95)
    """
    counted = [Arm(name, impressions, clicks) for name, impressions, clicks in arms]
    prior = DecisionRule().pooled_prior(counted, source="segment pooled")
    return allocation_probabilities(
        counted,
        min_propensity=min(min_propensity, 1.0 / len(counted)),
        prior_a=prior.alpha,
        prior_b=prior.beta,
        draws=draws,
        seed=seed,
        exploration_share=DEFAULT_EXPLORATION_SHARE,
    )


class ThompsonPolicy:
    """Thompson sampling on fixed counts per (segment, item, variant).

    :meth:`from_logs` takes the counts of the logged impressions themselves:
    "what would the allocator do now, knowing all of this window". The
    probabilities are computed once per context and candidate set.
    """

    name = "thompson"

    def __init__(
        self,
        counts: Mapping[tuple[str, str, str], tuple[int, int]],
        *,
        min_propensity: float = 0.0,
    ) -> None:
        self.counts = dict(counts)
        self.min_propensity = min_propensity
        self._cache: dict[tuple[str, str, tuple[str, ...]], FloatArray] = {}

    @classmethod
    def from_logs(
        cls, units: Iterable[LoggedImpression], *, min_propensity: float = 0.0
    ) -> ThompsonPolicy:
        counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for u in units:
            cell = counts[(u.segment, u.item_id, u.shown)]
            cell[0] += 1
            cell[1] += int(u.reward > 0)
        return cls({k: (v[0], v[1]) for k, v in counts.items()}, min_propensity=min_propensity)

    def probabilities(self, unit: LoggedImpression) -> FloatArray:
        key = (unit.segment, unit.item_id, unit.candidates)
        probs = self._cache.get(key)
        if probs is None:
            arms = [
                (c, *self.counts.get((unit.segment, unit.item_id, c), (0, 0)))
                for c in unit.candidates
            ]
            by_name = thompson_probabilities(arms, min_propensity=self.min_propensity)
            probs = self._cache[key] = np.array([by_name[c] for c in unit.candidates])
        return probs


def parse_policy(
    spec: str, units: Iterable[LoggedImpression] = (), *, min_propensity: float = 0.0
) -> TargetPolicy:
    """The policy named ``spec``: ``model``, ``thompson``, ``uniform`` or ``variant=NAME``.

    ``units`` are the logs a ``thompson`` policy takes its counts from.

    >>> parse_policy("variant=v0").name
    'variant=v0'
    """
    if spec == "uniform":
        return UniformPolicy()
    if spec == "model":
        return GreedyPolicy()
    if spec == "thompson":
        return ThompsonPolicy.from_logs(units, min_propensity=min_propensity)
    if spec.startswith("variant="):
        return VariantPolicy(spec.removeprefix("variant="))
    raise ValueError(f"unknown policy {spec!r}; one of: {', '.join(POLICY_NAMES)}")
