"""The decision rule of a visual A/B test: one verdict per segment, and why.

Every arm's CTR has the empirical-Bayes prior of its item or segment
(:mod:`online_ctr.ab.prior`), and one arm is the **control** (the first by
default): the others are read as uplifts over it
(:mod:`online_ctr.ab.uplift`). In this order, the first that applies
decides (:func:`decide`, with the thresholds of :class:`DecisionRule`):

1. no arm has an impression: ``no_data``;
2. SRM p-value below ``srm_p_value`` (0.001, GrowthBook's default):
   ``srm_mismatch``; a verdict is blocked until the allocation is fixed
   (:mod:`online_ctr.ab.srm`);
3. fewer than two arms, an arm below ``min_impressions`` (200), or fewer than
   ``min_clicks`` (30) clicks in all arms together: ``keep_testing``;
4. the arm with the highest chance to win (:mod:`online_ctr.ab.posterior`)
   wins when all three hold, else ``keep_testing`` with the reason:

   a. its chance to win is at least ``chance_to_win`` (0.95, GrowthBook's
      default);
   b. its relative risk (risk divided by its posterior mean CTR) is below
      ``max_relative_risk`` (0.0025 = 0.25%, GrowthBook's "win risk");
   c. against the control, its ``credible_level`` (95%) interval of
      relative uplift excludes 0: a challenger must beat the control with
      probability at least 97.5%, and a leading control must have every
      challenger below it with that probability.

Rule c bounds the false winners: on an A/A test (identical arms) read once,
each arm is declared the winner with probability of about
``(1 - credible_level) / 2`` at most (a one-sided test at that level; the
pooled prior's shrinkage only lowers it), so a winner of ``k`` arms appears
with probability ``k (1 - credible_level) / 2`` at most, 5% for two arms
(:meth:`DecisionRule.false_winner_level`; the seeded simulation in the unit
tests measures it). Rules a and b alone allow about 10%: 5% on each side.

A lift of the leader over the runner-up above ``max_lift`` (0.5 = 50%,
GrowthBook's "suspicious" change) adds a warning: visual variants rarely move
CTR by half, so such a lift more often means a logging or assignment bug.
For CTRs of a few percent the risk threshold only binds on small-sample,
skewed posteriors, where it should (worked figures in
``docs/measurements.md``); 200 impressions and 30 clicks keep the first
minutes of a test (a handful of clicks, posteriors that swing with every
one) from being read at all. Each verdict also says how many more
impressions per arm the effect seen so far would need
(:mod:`online_ctr.ab.sample_size`).

>>> from online_ctr.ab.arm import Arm
>>> early = decide([Arm("a", 150, 5), Arm("b", 150, 9)], segment="device=mobile")
>>> early.decision
'keep_testing'
>>> print(early.message)  # doctest: +NORMALIZE_WHITESPACE
keep testing for segment device=mobile: 'a' has 150, 'b' has 150 impressions, fewer than
200 per arm; needs about 2644 more impressions per arm to tell 'b' (+40.1%) from control 'a'
>>> verdict = decide([Arm("a", 20_000, 800), Arm("b", 20_000, 900)], segment="device=mobile")
>>> verdict.decision, verdict.winner, verdict.method, verdict.control
('winner', 'b', 'exact', 'a')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from online_ctr.ab.arm import Arm, Beta, check_names
from online_ctr.ab.posterior import DEFAULT_DRAWS, Method, analyse
from online_ctr.ab.prior import DEFAULT_PRIOR_STRENGTH, Prior, pooled_prior
from online_ctr.ab.sample_size import SampleSize, sample_size
from online_ctr.ab.srm import SrmResult, srm_check
from online_ctr.ab.uplift import Uplift, relative_uplift

__all__ = ["ArmStats", "Decision", "DecisionRule", "Verdict", "decide"]

log = logging.getLogger(__name__)

Decision = Literal["keep_testing", "winner", "srm_mismatch", "no_data"]


@dataclass(frozen=True)
class DecisionRule:
    """When a variant may be declared the winner of a segment (see the module docstring).

    Defaults follow GrowthBook's Bayesian engine where it has one (chance to
    win 95%, win risk 0.25% relative, SRM p-value 0.001, a 50% change
    flagged as suspicious); the sample minimums, the prior's strength and
    the control rule are ours, sized for CTRs of a few percent.
    """

    #: the base prior ``Beta(prior_a, prior_b)`` under the pooled CTR (uniform);
    #: with ``prior_strength`` 0 every arm's prior, as before empirical Bayes
    prior_a: float = 1.0
    prior_b: float = 1.0
    #: the chance to win the leader must reach
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
    #: probability of the reported credible intervals, and of the uplift
    #: interval that must exclude 0 against the control
    credible_level: float = 0.95
    #: Monte Carlo draws (three or more arms, uplift intervals)
    draws: int = DEFAULT_DRAWS
    #: pseudo-impressions the pooled prior is worth at most (0: no pooling)
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    #: power of the sample-size estimate (at level ``1 - credible_level``)
    power: float = 0.8
    #: a relative effect below this has no sample size (``None``)
    min_effect: float = 0.001

    def __post_init__(self) -> None:
        if not (self.prior_a > 0 and self.prior_b > 0):
            raise ValueError("prior parameters must be positive")
        for name in ("chance_to_win", "credible_level", "srm_p_value", "power"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1)")
        if self.max_relative_risk <= 0 or self.max_lift <= 0:
            raise ValueError("max_relative_risk and max_lift must be positive")
        if self.min_impressions < 0 or self.min_clicks < 0 or self.draws < 1:
            raise ValueError("min_impressions, min_clicks must be >= 0 and draws >= 1")
        if self.prior_strength < 0 or self.min_effect < 0:
            raise ValueError("prior_strength and min_effect must be >= 0")

    def base_prior(self) -> Prior:
        """``Beta(prior_a, prior_b)``: the parent of an item's pooled prior."""
        return Prior.of_beta(self.prior_a, self.prior_b, "base")

    def pooled_prior(
        self, arms: Sequence[Arm], *, parent: Prior | None = None, source: str = "pooled"
    ) -> Prior:
        """The empirical-Bayes prior of these arms' scope (:mod:`online_ctr.ab.prior`).

        ``parent`` is the prior the pooled CTR is smoothed towards: the base
        prior for an item, the item's prior for a segment.
        """
        if self.prior_strength == 0:
            return Prior.of_beta(self.prior_a, self.prior_b, "fixed")
        return pooled_prior(
            arms,
            strength=self.prior_strength,
            parent=parent if parent is not None else self.base_prior(),
            source=source,
        )

    def false_winner_level(self, arms: int = 2) -> float:
        """Most an A/A test of ``arms`` arms read once declares a winner: ``k (1 - level) / 2``."""
        return min(1.0, arms * (1.0 - self.credible_level) / 2.0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArmStats:
    """One arm of a :class:`Verdict`: counts, posterior summaries and the uplift over control."""

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
    is_control: bool = False
    #: ``P(p > p_control)``, exact; ``None`` for the control itself
    chance_to_beat_control: float | None = None
    #: posterior mean over the control's, minus 1; ``None`` for the control
    uplift: float | None = None
    uplift_ci_low: float | None = None
    uplift_ci_high: float | None = None

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
    control: str | None = None
    prior: Prior | None = None
    sample_size: SampleSize | None = None

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
            "control": self.control,
            "prior": self.prior.as_dict() if self.prior is not None else None,
            "sample_size": self.sample_size.as_dict() if self.sample_size is not None else None,
        }


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _signed(value: float) -> str:
    return f"{100.0 * value:+.1f}%"


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


def _uplifts(
    arms: Sequence[Arm], posteriors: Sequence[Beta], control: int, rule: DecisionRule, seed: int
) -> list[Uplift | None]:
    """Each arm's uplift over the control (``None`` for the control itself)."""
    return [
        None
        if i == control
        else relative_uplift(
            posteriors[control],
            post,
            level=rule.credible_level,
            draws=rule.draws,
            seed=seed + i,
        )
        for i, post in enumerate(posteriors)
    ]


def _sample_size(
    arms: Sequence[Arm], posteriors: Sequence[Beta], control: int, rule: DecisionRule
) -> SampleSize | None:
    """At the effect of the best challenger (by posterior mean) over the control."""
    others = [i for i in range(len(arms)) if i != control]
    if not others:
        return None
    best = max(others, key=lambda i: posteriors[i].mean)
    return sample_size(
        arms[control].name,
        posteriors[control].mean,
        arms[control].impressions,
        arms[best].name,
        posteriors[best].mean,
        arms[best].impressions,
        alpha=1.0 - rule.credible_level,
        power=rule.power,
        min_effect=rule.min_effect,
    )


def _control_blocks(
    leader: int, control: int, names: Sequence[str], uplifts: Sequence[Uplift | None]
) -> str | None:
    """Rule c: why the leader has not beaten the control (or they it), else ``None``."""
    if leader != control:
        up = uplifts[leader]
        assert up is not None
        if up.excludes_zero():
            return None
        return (
            f"uplift {_signed(up.estimate)} of {names[leader]!r} over control "
            f"{names[control]!r}, {_pct(up.level)} interval [{_signed(up.ci_low)}, "
            f"{_signed(up.ci_high)}], includes 0 (chance to beat control "
            f"{_pct(up.chance_to_beat_control)})"
        )
    close = [
        (names[i], up) for i, up in enumerate(uplifts) if up is not None and not up.excludes_zero()
    ]
    if not close:
        return None
    listed = ", ".join(
        f"{name!r} {_signed(up.estimate)} [{_signed(up.ci_low)}, {_signed(up.ci_high)}]"
        for name, up in close
    )
    return f"control {names[control]!r} leads, but the uplift interval of {listed} includes 0"


def decide(
    arms: Sequence[Arm],
    rule: DecisionRule = DecisionRule(),
    *,
    segment: str,
    seed: int = 0,
    expected_shares: Mapping[str, float] | Sequence[float] | None = None,
    control: str | None = None,
    prior: Prior | None = None,
) -> Verdict:
    """Apply ``rule`` to the arms of one segment and say what to do, and why.

    ``control`` names the control arm (default: the first). ``prior`` is
    every arm's prior (default: pooled from these arms,
    :meth:`DecisionRule.pooled_prior`; the API passes the item's or the
    segment's). ``expected_shares`` is passed to :func:`srm_check` (equal
    split by default). ``seed`` fixes the Monte Carlo draws, so a dashboard
    refresh on unchanged counts shows unchanged numbers.
    """
    check_names(arms)
    names = [a.name for a in arms]
    if control is not None and control not in names:
        raise ValueError(f"control {control!r} is not one of the arms {names}")
    control_i = names.index(control) if control is not None else 0
    if prior is None:
        prior = rule.pooled_prior(arms)
    posteriors = [a.posterior(prior.alpha, prior.beta) for a in arms]
    ctw, risk, method = analyse(posteriors, rule.draws, seed)
    uplifts = _uplifts(arms, posteriors, control_i, rule, seed) if arms else []
    stats = []
    for i, (arm, post, p_win, loss) in enumerate(zip(arms, posteriors, ctw, risk, strict=True)):
        low, high = post.interval(rule.credible_level)
        up = uplifts[i]
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
                is_control=i == control_i,
                chance_to_beat_control=None if up is None else up.chance_to_beat_control,
                uplift=None if up is None else up.estimate,
                uplift_ci_low=None if up is None else up.ci_low,
                uplift_ci_high=None if up is None else up.ci_high,
            )
        )
    srm = srm_check(arms, expected_shares, threshold=rule.srm_p_value)
    size = _sample_size(arms, posteriors, control_i, rule) if arms else None
    warnings = [f"arm {a.name!r} has no impressions" for a in arms if a.impressions == 0]

    def verdict(decision: Decision, message: str, winner: str | None = None) -> Verdict:
        if decision == "keep_testing" and size is not None and size.more_per_arm > 0:
            message += (
                f"; needs about {size.more_per_arm} more impressions per arm to tell "
                f"{size.arm!r} ({_signed(size.relative_effect)}) from control {size.control!r}"
            )
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
            control=names[control_i] if arms else None,
            prior=prior,
            sample_size=size,
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
    if leader_i != control_i:
        up = uplifts[leader_i]
        assert up is not None
        summary = (
            f"uplift {_signed(up.estimate)} [{_signed(up.ci_low)}, {_signed(up.ci_high)}] "
            f"over control {names[control_i]!r}, {summary}"
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
    blocked = _control_blocks(leader_i, control_i, names, uplifts)
    if blocked is not None:
        return verdict(
            "keep_testing",
            f"keep testing for segment {segment}: {blocked}; a winner needs its "
            f"{_pct(rule.credible_level)} uplift interval against the control to exclude 0",
        )
    return verdict(
        "winner", f"variant {leader.name} wins for segment {segment}: {summary}", leader.name
    )
