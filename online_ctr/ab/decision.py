"""The decision rule of a visual A/B test: one verdict per segment, and why.

In this order, the first that applies decides (:func:`decide`, with the
thresholds of :class:`DecisionRule`):

1. no arm has an impression: ``no_data``;
2. SRM p-value below ``srm_p_value`` (0.001, GrowthBook's default):
   ``srm_mismatch``; a verdict is blocked until the allocation is fixed
   (:mod:`online_ctr.ab.srm`);
3. fewer than two arms, an arm below ``min_impressions`` (200), or fewer than
   ``min_clicks`` (30) clicks in all arms together: ``keep_testing``;
4. the arm with the highest chance to win (:mod:`online_ctr.ab.posterior`)
   has at least ``chance_to_win`` (0.95, GrowthBook's default) and a
   relative risk (risk divided by its posterior mean CTR) below
   ``max_relative_risk`` (0.0025 = 0.25%, GrowthBook's default "win risk"):
   ``winner``; otherwise ``keep_testing`` with the reason.

A lift of the leader over the runner-up above ``max_lift`` (0.5 = 50%,
GrowthBook's "suspicious" change) adds a warning: visual variants rarely move
CTR by half, so such a lift more often means a logging or assignment bug.
For CTRs of a few percent the risk threshold only binds on small-sample,
skewed posteriors, where it should (worked figures in
``docs/measurements.md``); 200 impressions and 30 clicks keep the first
minutes of a test (a handful of clicks, posteriors that swing with every
one) from being read at all.

>>> from online_ctr.ab.arm import Arm
>>> early = decide([Arm("a", 150, 5), Arm("b", 150, 9)], segment="device=mobile")
>>> early.decision
'keep_testing'
>>> print(early.message)
keep testing for segment device=mobile: 'a' has 150, 'b' has 150 impressions, fewer than 200 per arm
>>> verdict = decide([Arm("a", 20_000, 800), Arm("b", 20_000, 900)], segment="device=mobile")
>>> verdict.decision, verdict.winner, verdict.method
('winner', 'b', 'exact')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from online_ctr.ab.arm import Arm, check_names
from online_ctr.ab.posterior import DEFAULT_DRAWS, Method, analyse
from online_ctr.ab.srm import SrmResult, srm_check

__all__ = ["ArmStats", "Decision", "DecisionRule", "Verdict", "decide"]

log = logging.getLogger(__name__)

Decision = Literal["keep_testing", "winner", "srm_mismatch", "no_data"]


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
    check_names(arms)
    posteriors = [a.posterior(rule.prior_a, rule.prior_b) for a in arms]
    ctw, risk, method = analyse(posteriors, rule.draws, seed)
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
