"""Beta-Binomial maths of a visual A/B test: who wins, how sure, and is the split sound.

Why this module exists
----------------------
Every item can be shown with several visual variants (images) and the
counters keep impressions and clicks per item, variant and audience segment.
The ``GET /ab/{item_id}`` endpoint and the dashboard must turn those counts
into one decision per segment that a person can act on: *ship variant b to
mobile users in DE*, or *keep testing, and here is why*. The same maths
drives ``POST /ab/{item_id}/allocate``, which picks the variant to show next
(Thompson sampling) and returns the probability it was picked with, so that
the impression can log it (``Impression.propensity``) for off-policy
evaluation. Everything here is pure: counts in, numbers out; no I/O.

The model
---------
Each arm (a variant in a segment) has an unknown CTR ``p`` with a
``Beta(prior_a, prior_b)`` prior, ``Beta(1, 1)`` (uniform) by default; after
``n`` impressions and ``c`` clicks its posterior is
``Beta(prior_a + c, prior_b + n - c)``. From the posteriors:

* **credible interval**: equal-tailed, from exact Beta quantiles
  (:meth:`~online_ctr.beta_dist.Beta.quantile`: safeguarded Newton on the
  regularized incomplete beta function, :mod:`online_ctr.beta_dist`;
  accurate to ~1e-10, far inside the 1e-6 a dashboard needs).
* **chance to win**: the probability that an arm has the highest CTR.
  With two arms it is exact: Evan Miller's closed form for ``P(p_B > p_A)``,
  a finite sum over an integer Beta parameter, summed in log space
  (:func:`prob_beats`). With three or more arms (or a non-integer prior and
  no integer parameter, or more than :data:`MAX_EXACT_TERMS` terms) it is
  Monte Carlo: ``draws`` joint posterior samples from a seeded
  ``numpy.random.Generator`` (20,000 by default, standard error at most
  ``0.5 / sqrt(20000)`` = 0.0035), deterministic for a given seed.
* **risk** (expected loss, GrowthBook's "risk"): for each arm,
  ``E[max(max_{j != i} p_j - p_i, 0)]``, the CTR expected to be lost by
  shipping it. Two arms: exact, since
  ``E[max(p_B - p_A, 0)] = E[p_B] P(p_B' > p_A) - E[p_A] P(p_B > p_A')`` with
  ``p'`` the size-biased posterior ``Beta(alpha + 1, beta)`` (Stucchio's
  identity), two more closed-form probabilities. Otherwise Monte Carlo on the
  same draws as the chance to win. **Relative risk** is the risk divided by
  the arm's own posterior mean CTR: the fraction of its CTR expected to be
  lost, comparable across items whose CTRs differ tenfold.
* **sample ratio mismatch** (:func:`srm_check`): a chi-square goodness-of-fit
  test of the impressions per arm against the shares the allocation meant to
  give them. A mismatch means the assignment or the logging is broken, and
  then no CTR comparison can be trusted, however significant it looks.

The decision rule (:class:`DecisionRule`, :func:`decide`)
---------------------------------------------------------
In this order, the first that applies decides:

1. no arm has an impression: ``no_data``;
2. SRM p-value below ``srm_p_value`` (0.001, GrowthBook's default):
   ``srm_mismatch``; a verdict is blocked until the allocation is fixed;
3. fewer than two arms, an arm below ``min_impressions`` (200), or fewer than
   ``min_clicks`` (30) clicks in all arms together: ``keep_testing``;
4. the arm with the highest chance to win has at least ``chance_to_win``
   (0.95, GrowthBook's default) and a relative risk below
   ``max_relative_risk`` (0.0025 = 0.25%, GrowthBook's default "win risk"):
   ``winner``; otherwise ``keep_testing`` with the reason.

A lift of the leader over the runner-up above ``max_lift`` (0.5 = 50%,
GrowthBook's "suspicious" change) adds a warning: visual variants rarely move
CTR by half, so such a lift more often means a logging or assignment bug.
Why these numbers for CTRs of a few percent: a 10% relative lift on a 4% CTR
reaches 95% chance to win after about 14,000 impressions per arm; there the
leader's relative risk is about 0.1%, so the risk threshold only binds on
small-sample, skewed posteriors, where it should. 200 impressions and 30
clicks keep the first minutes of a test (a handful of clicks, posteriors
that swing with every one) from being read at all.

Thompson sampling (:func:`thompson_allocate`, :func:`allocation_probabilities`)
-------------------------------------------------------------------------------
Thompson sampling shows each arm with its posterior probability of being the
best: that *is* its chance to win (probability matching). The arm is drawn
from those probabilities, mixed with a uniform floor ``min_propensity``, so
the propensity returned is exactly the probability the choice was made with,
which inverse-propensity estimators need; drawing one posterior sample per
arm and taking the largest is the same policy in distribution.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from online_ctr.beta_dist import Beta, chi2_sf, log_beta, regularized_beta

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

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Decision = Literal["keep_testing", "winner", "srm_mismatch", "no_data"]
Method = Literal["exact", "monte_carlo"]

#: Monte Carlo draws of the joint posterior (standard error of a probability
#: at most 0.5 / sqrt(draws) = 0.0035).
DEFAULT_DRAWS = 20_000
#: Evan Miller's sum has one term per unit of the integer parameter it runs
#: over; beyond this many (a million clicks in one arm) Monte Carlo is used.
MAX_EXACT_TERMS = 1_000_000


@dataclass(frozen=True)
class Arm:
    """One variant's counts in one segment: ``impressions`` shown, ``clicks`` on them.

    A click is a clicked impression (the counters never count two clicks on
    one impression), so ``0 <= clicks <= impressions``.
    """

    name: str
    impressions: int
    clicks: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an arm needs a name")
        for label, value in (("impressions", self.impressions), ("clicks", self.clicks)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{label} of arm {self.name!r} must be an int, got {value!r}")
            object.__setattr__(self, label, int(value))  # a numpy int would not JSON-encode
        if not 0 <= self.clicks <= self.impressions:
            raise ValueError(
                f"arm {self.name!r}: need 0 <= clicks <= impressions, "
                f"got {self.clicks} clicks on {self.impressions} impressions"
            )

    @property
    def ctr(self) -> float | None:
        """Observed CTR, ``None`` without impressions."""
        return self.clicks / self.impressions if self.impressions else None

    def posterior(self, prior_a: float = 1.0, prior_b: float = 1.0) -> Beta:
        return Beta(prior_a + self.clicks, prior_b + self.impressions - self.clicks)

    def posterior_mean(self, prior_a: float = 1.0, prior_b: float = 1.0) -> float:
        return self.posterior(prior_a, prior_b).mean

    def credible_interval(
        self, level: float = 0.95, *, prior_a: float = 1.0, prior_b: float = 1.0
    ) -> tuple[float, float]:
        """Equal-tailed posterior interval of the CTR (exact Beta quantiles)."""
        return self.posterior(prior_a, prior_b).interval(level)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "impressions": self.impressions, "clicks": self.clicks}


# ---------------------------------------------------------------------------
# Chance to win and risk
# ---------------------------------------------------------------------------


def _integer(value: float) -> int | None:
    return int(value) if value >= 1.0 and float(value).is_integer() else None


def _miller(a: Beta, b: Beta, n: int) -> float:
    """``P(p_b > p_a)`` by Evan Miller's sum over ``i < n = b.alpha`` (an integer).

    ``sum_i B(a.alpha + i, a.beta + b.beta) / ((b.beta + i) B(1 + i, b.beta) B(a.alpha, a.beta))``.
    Consecutive terms have the ratio
    ``(a.alpha + i)(b.beta + i) / ((a.alpha + a.beta + b.beta + i)(1 + i))``, so
    the log terms are one ``cumsum``; they are summed relative to their maximum.
    """
    log_first = log_beta(a.alpha, a.beta + b.beta) - log_beta(a.alpha, a.beta)
    i = np.arange(n - 1, dtype=np.float64)
    log_ratio = (
        np.log(a.alpha + i)
        + np.log(b.beta + i)
        - np.log(a.alpha + a.beta + b.beta + i)
        - np.log1p(i)
    )
    log_terms = log_first + np.concatenate(([0.0], np.cumsum(log_ratio)))
    top = float(log_terms.max())
    total = math.exp(top) * math.fsum(np.exp(log_terms - top).tolist())
    return min(max(total, 0.0), 1.0)


def prob_beats(a: Beta, b: Beta) -> float | None:
    """Exact ``P(p_b > p_a)`` for independent Beta posteriors, or ``None`` if not available.

    Evan Miller's closed form needs an integer ``b.alpha``; by symmetry
    (``P(p_b > p_a) = 1 - P(p_a > p_b)`` and ``p -> 1 - p``) any one integer
    parameter among the four will do, and the one with the fewest terms is
    used. ``None`` when none is an integer (a non-integer prior) or the sum
    would exceed :data:`MAX_EXACT_TERMS` terms.

    >>> prob_beats(Beta(1.0, 1.0), Beta(2.0, 1.0))  # doctest: +ELLIPSIS
    0.666666666666...
    """
    options: list[tuple[int, int]] = []  # (terms, which)
    for which, value in enumerate((b.alpha, a.alpha, a.beta, b.beta)):
        n = _integer(value)
        if n is not None and n <= MAX_EXACT_TERMS:
            options.append((n, which))
    if not options:
        return None
    n, which = min(options)
    if which == 0:  # b.alpha integer
        return _miller(a, b, n)
    if which == 1:  # a.alpha integer: 1 - P(p_a > p_b)
        return 1.0 - _miller(b, a, n)
    if which == 2:  # a.beta integer: P(1 - p_a > 1 - p_b)
        return _miller(b.flipped(), a.flipped(), n)
    return 1.0 - _miller(a.flipped(), b.flipped(), n)  # b.beta integer


def _exact_two(first: Beta, second: Beta) -> tuple[FloatArray, FloatArray] | None:
    """Chance to win and risk of two arms in closed form, if the parameters allow it."""
    p_second = prob_beats(first, second)
    lift_second = prob_beats(first, second.size_biased())
    lift_first = prob_beats(first.size_biased(), second)
    if p_second is None or lift_second is None or lift_first is None:
        return None
    # E[max(p2 - p1, 0)] = E[p2] P(p2' > p1) - E[p1] P(p2 > p1'), p' size-biased.
    loss_first = second.mean * lift_second - first.mean * lift_first
    # E[max(p1 - p2, 0)] = E[max(p2 - p1, 0)] - E[p2 - p1]
    loss_second = loss_first - (second.mean - first.mean)
    ctw = np.array([1.0 - p_second, p_second])
    risk = np.maximum(np.array([loss_first, loss_second]), 0.0)
    return ctw, risk


def _monte_carlo(
    posteriors: Sequence[Beta], draws: int, seed: int
) -> tuple[FloatArray, FloatArray]:
    """Chance to win and risk of each arm from ``draws`` joint posterior samples."""
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    rng = np.random.default_rng(seed)
    alphas = np.array([p.alpha for p in posteriors])
    betas = np.array([p.beta for p in posteriors])
    samples = rng.beta(alphas, betas, size=(draws, len(posteriors)))
    best = samples.argmax(axis=1)
    ctw = np.bincount(best, minlength=len(posteriors)).astype(np.float64) / draws
    order = np.sort(samples, axis=1)
    top, runner_up = order[:, -1], order[:, -2]
    columns = np.arange(len(posteriors))
    best_other = np.where(best[:, None] == columns[None, :], runner_up[:, None], top[:, None])
    risk = np.maximum(best_other - samples, 0.0).mean(axis=0)
    return ctw, risk


def _analyse(
    posteriors: Sequence[Beta], draws: int, seed: int
) -> tuple[FloatArray, FloatArray, Method]:
    k = len(posteriors)
    if k == 0:
        return np.zeros(0), np.zeros(0), "exact"
    if k == 1:
        return np.ones(1), np.zeros(1), "exact"
    if k == 2:
        exact = _exact_two(posteriors[0], posteriors[1])
        if exact is not None:
            return exact[0], exact[1], "exact"
    ctw, risk = _monte_carlo(posteriors, draws, seed)
    return ctw, risk, "monte_carlo"


def _check_names(arms: Sequence[Arm]) -> None:
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}")


def chance_to_win(
    arms: Sequence[Arm],
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    *,
    prior_a: float = 1.0,
    prior_b: float = 1.0,
) -> dict[str, float]:
    """Posterior probability that each arm has the highest CTR (sums to 1).

    Two arms: exact (:func:`prob_beats`). More: Monte Carlo with ``draws``
    samples from ``numpy.random.default_rng(seed)``, deterministic per seed.
    """
    _check_names(arms)
    ctw, _, _ = _analyse([a.posterior(prior_a, prior_b) for a in arms], draws, seed)
    return {arm.name: float(p) for arm, p in zip(arms, ctw, strict=True)}


def expected_loss(
    arms: Sequence[Arm],
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    *,
    prior_a: float = 1.0,
    prior_b: float = 1.0,
) -> dict[str, float]:
    """Risk of each arm: ``E[max(max_{j != i} p_j - p_i, 0)]``, absolute CTR (``>= 0``).

    Two arms: exact (size-biased closed form, see the module docstring).
    More: Monte Carlo on the same draws :func:`chance_to_win` uses for the
    same seed. A single arm has no risk.
    """
    _check_names(arms)
    _, risk, _ = _analyse([a.posterior(prior_a, prior_b) for a in arms], draws, seed)
    return {arm.name: float(r) for arm, r in zip(arms, risk, strict=True)}


# ---------------------------------------------------------------------------
# Sample ratio mismatch
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SrmResult:
    """Chi-square goodness of fit of the impressions per arm to the intended shares."""

    statistic: float
    dof: int
    p_value: float
    mismatch: bool
    expected_shares: tuple[float, ...]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["expected_shares"] = list(self.expected_shares)
        out["statistic"] = self.statistic if math.isfinite(self.statistic) else None
        return out


def _shares(
    arms: Sequence[Arm], expected_shares: Mapping[str, float] | Sequence[float] | None
) -> list[float]:
    if expected_shares is None:
        raw = [1.0] * len(arms)
    elif isinstance(expected_shares, Mapping):
        missing = [a.name for a in arms if a.name not in expected_shares]
        if missing:
            raise ValueError(f"expected_shares has no share for arms {missing}")
        raw = [float(expected_shares[a.name]) for a in arms]
    else:
        raw = [float(s) for s in expected_shares]
        if len(raw) != len(arms):
            raise ValueError(f"{len(raw)} expected shares for {len(arms)} arms")
    if any(not math.isfinite(s) or s < 0 for s in raw) or (arms and sum(raw) <= 0):
        raise ValueError(f"expected shares must be finite, >= 0 and not all 0: {raw}")
    total = sum(raw)
    return [s / total for s in raw] if total else raw


def srm_check(
    arms: Sequence[Arm],
    expected_shares: Mapping[str, float] | Sequence[float] | None = None,
    *,
    threshold: float = 0.001,
) -> SrmResult:
    """Sample ratio mismatch: were impressions split across arms as intended?

    ``expected_shares`` (by arm name, or in the order of ``arms``; normalised)
    defaults to an equal split. Under an adaptive allocation
    (:func:`thompson_allocate`) pass each arm's mean logged propensity over
    the period instead: that is the share it was meant to get. Pearson's
    ``sum (observed - expected)^2 / expected`` on ``k`` arms with a positive
    share has ``k - 1`` degrees of freedom; ``mismatch`` when the p-value is
    below ``threshold`` (0.001: the check runs on every dashboard refresh, so
    it must rarely cry wolf). Impressions on an arm meant to get none are an
    infinite statistic. Without impressions or with one arm there is nothing
    to test (p-value 1).
    """
    _check_names(arms)
    shares = _shares(arms, expected_shares)
    total = sum(a.impressions for a in arms)
    cells = [(a.impressions, s) for a, s in zip(arms, shares, strict=True) if s > 0]
    dof = max(len(cells) - 1, 0)
    if any(a.impressions > 0 and s == 0 for a, s in zip(arms, shares, strict=True)):
        return SrmResult(math.inf, dof, 0.0, True, tuple(shares), threshold)
    if total == 0 or dof < 1:
        return SrmResult(0.0, dof, 1.0, False, tuple(shares), threshold)
    statistic = math.fsum((n - total * s) ** 2 / (total * s) for n, s in cells)
    p_value = chi2_sf(statistic, dof)
    return SrmResult(statistic, dof, p_value, p_value < threshold, tuple(shares), threshold)


# ---------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRule:
    """When a variant may be declared the winner of a segment (see the module docstring).

    Defaults follow GrowthBook's Bayesian engine where it has one (chance to
    win 95%, win risk 0.25% relative, SRM p-value 0.001, a 50% change
    flagged as suspicious); the sample minimums are ours, sized for CTRs of
    a few percent.
    """

    #: ``Beta(prior_a, prior_b)`` prior of every arm's CTR; ``(1, 1)`` is uniform.
    prior_a: float = 1.0
    prior_b: float = 1.0
    #: the leader's chance to win must reach this
    chance_to_win: float = 0.95
    #: and its risk divided by its posterior mean CTR must stay below this
    max_relative_risk: float = 0.0025
    #: every arm needs this many impressions before any verdict
    min_impressions: int = 200
    #: and all arms together this many clicks
    min_clicks: int = 30
    #: a relative lift of the leader over the runner-up above this is a warning
    max_lift: float = 0.5
    #: SRM p-value below this blocks the verdict
    srm_p_value: float = 0.001
    #: probability of the reported credible intervals
    credible_level: float = 0.95
    #: Monte Carlo draws (three or more arms)
    draws: int = DEFAULT_DRAWS

    def __post_init__(self) -> None:
        if not (self.prior_a > 0 and self.prior_b > 0):
            raise ValueError("prior parameters must be positive")
        for name in ("chance_to_win", "credible_level", "srm_p_value"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1)")
        if self.max_relative_risk <= 0 or self.max_lift <= 0:
            raise ValueError("max_relative_risk and max_lift must be positive")
        if self.min_impressions < 0 or self.min_clicks < 0 or self.draws < 1:
            raise ValueError("min_impressions, min_clicks must be >= 0 and draws >= 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArmStats:
    """One arm of a :class:`Verdict`: counts and posterior summaries."""

    name: str
    impressions: int
    clicks: int
    ctr: float | None
    posterior_mean: float
    ci_low: float
    ci_high: float
    chance_to_win: float
    risk: float
    relative_risk: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The decision for one item's visual test in one segment, JSON-ready via :meth:`as_dict`."""

    segment: str
    decision: Decision
    winner: str | None
    message: str
    arms: tuple[ArmStats, ...]
    srm: SrmResult
    method: Method
    rule: DecisionRule
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "decision": self.decision,
            "winner": self.winner,
            "message": self.message,
            "arms": [a.as_dict() for a in self.arms],
            "srm": self.srm.as_dict(),
            "method": self.method,
            "rule": self.rule.as_dict(),
            "warnings": list(self.warnings),
        }


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _keep_testing_reason(arms: Sequence[Arm], rule: DecisionRule) -> str | None:
    if len(arms) < 2:
        return f"a test needs at least two arms, got {len(arms)}"
    short = [a for a in arms if a.impressions < rule.min_impressions]
    if short:
        listed = ", ".join(f"{a.name!r} has {a.impressions}" for a in short)
        return f"{listed} impressions, fewer than {rule.min_impressions} per arm"
    clicks = sum(a.clicks for a in arms)
    if clicks < rule.min_clicks:
        return f"{clicks} clicks in all arms, fewer than {rule.min_clicks}"
    return None


def decide(
    arms: Sequence[Arm],
    rule: DecisionRule = DecisionRule(),
    *,
    segment: str,
    seed: int = 0,
    expected_shares: Mapping[str, float] | Sequence[float] | None = None,
) -> Verdict:
    """Apply ``rule`` to the arms of one segment and say what to do, and why.

    ``expected_shares`` is passed to :func:`srm_check` (equal split by
    default). ``seed`` fixes the Monte Carlo draws, so a dashboard refresh on
    unchanged counts shows unchanged numbers.
    """
    _check_names(arms)
    posteriors = [a.posterior(rule.prior_a, rule.prior_b) for a in arms]
    ctw, risk, method = _analyse(posteriors, rule.draws, seed)
    stats = []
    for arm, post, p_win, loss in zip(arms, posteriors, ctw, risk, strict=True):
        low, high = post.interval(rule.credible_level)
        stats.append(
            ArmStats(
                name=arm.name,
                impressions=arm.impressions,
                clicks=arm.clicks,
                ctr=arm.ctr,
                posterior_mean=post.mean,
                ci_low=low,
                ci_high=high,
                chance_to_win=float(p_win),
                risk=float(loss),
                relative_risk=float(loss) / post.mean,
            )
        )
    srm = srm_check(arms, expected_shares, threshold=rule.srm_p_value)
    warnings = [f"arm {a.name!r} has no impressions" for a in arms if a.impressions == 0]

    def verdict(decision: Decision, message: str, winner: str | None = None) -> Verdict:
        out = Verdict(
            segment=segment,
            decision=decision,
            winner=winner,
            message=message,
            arms=tuple(stats),
            srm=srm,
            method=method,
            rule=rule,
            warnings=tuple(warnings),
        )
        log.debug("A/B verdict for segment %s: %s (%s)", segment, decision, message)
        return out

    if not arms or all(a.impressions == 0 for a in arms):
        return verdict("no_data", f"no data for segment {segment}: no arm has impressions")
    if srm.mismatch:
        counts = ", ".join(f"{a.name}={a.impressions}" for a in arms)
        shares = ", ".join(
            f"{a.name}={s:.3f}" for a, s in zip(arms, srm.expected_shares, strict=True)
        )
        return verdict(
            "srm_mismatch",
            f"sample ratio mismatch for segment {segment}: impressions {counts} against "
            f"expected shares {shares} (chi-square p={srm.p_value:.2g} < {rule.srm_p_value}); "
            "fix the allocation or logging before reading the results",
        )
    reason = _keep_testing_reason(arms, rule)
    if reason is not None:
        return verdict("keep_testing", f"keep testing for segment {segment}: {reason}")

    leader_i = int(np.argmax(ctw))
    leader = stats[leader_i]
    runner_up = max((s for s in stats if s is not leader), key=lambda s: s.posterior_mean)
    lift = leader.posterior_mean / runner_up.posterior_mean - 1.0
    if lift > rule.max_lift:
        warnings.append(
            f"{leader.name!r} is {_pct(lift)} above {runner_up.name!r} in posterior mean CTR; "
            f"lifts above {_pct(rule.max_lift)} are rarely real: check the instrumentation "
            "(logging, variant assignment, bot traffic)"
        )
    summary = (
        f"chance to win {_pct(leader.chance_to_win)}, relative risk "
        f"{_pct(leader.relative_risk)}, CTR {_pct(leader.posterior_mean)} vs "
        f"{_pct(runner_up.posterior_mean)} for {runner_up.name!r}"
    )
    if leader.chance_to_win < rule.chance_to_win:
        return verdict(
            "keep_testing",
            f"keep testing for segment {segment}: leader {leader.name!r} has "
            f"{summary}; it needs a chance to win of {_pct(rule.chance_to_win)}",
        )
    if leader.relative_risk >= rule.max_relative_risk:
        return verdict(
            "keep_testing",
            f"keep testing for segment {segment}: leader {leader.name!r} has "
            f"{summary}; its relative risk must be below {_pct(rule.max_relative_risk)}",
        )
    return verdict(
        "winner", f"variant {leader.name} wins for segment {segment}: {summary}", leader.name
    )


# ---------------------------------------------------------------------------
# Allocation
# ---------------------------------------------------------------------------


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
