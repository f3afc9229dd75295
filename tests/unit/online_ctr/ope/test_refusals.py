"""Refusals: too few propensity-carrying impressions, no overlap; and the policies' answers."""

from __future__ import annotations

import numpy as np
import pytest

from online_ctr.ab.allocation import allocation_probabilities
from online_ctr.ab.arm import Arm
from online_ctr.ab.decision import DecisionRule
from online_ctr.ope import (
    DEFAULT_MIN_IMPRESSIONS,
    LoggedImpression,
    NoOverlap,
    OpeRefused,
    ThompsonPolicy,
    TooFewImpressions,
    UniformPolicy,
    VariantPolicy,
    evaluate,
    parse_policy,
    thompson_probabilities,
)


def units(n: int, logging: tuple[float, ...] | None = None) -> list[LoggedImpression]:
    return [
        LoggedImpression(
            "s", "i", ("a", "b"), "ab"[k % 2], 0.5, float(k % 3 == 0), (0.1, 0.2), logging
        )
        for k in range(n)
    ]


def test_too_few_impressions_is_refused_with_the_counts() -> None:
    with pytest.raises(TooFewImpressions) as info:
        evaluate(units(10), UniformPolicy())
    assert info.value.n == 10 and info.value.minimum == DEFAULT_MIN_IMPRESSIONS
    assert "only 10 logged impressions carry a propensity" in info.value.reason
    evaluate(units(10), UniformPolicy(), min_impressions=10)  # the minimum is configurable


def test_a_variant_never_logged_is_no_overlap() -> None:
    with pytest.raises(NoOverlap) as info:
        evaluate(units(100), VariantPolicy("zz"), min_impressions=10)
    assert info.value.unsupported_share == pytest.approx(1.0)
    assert "variant=zz" in info.value.reason and "100.0%" in info.value.reason
    assert isinstance(info.value, OpeRefused) and isinstance(info.value, ValueError)


def test_target_mass_where_the_logging_distribution_is_zero_is_no_overlap() -> None:
    # the logger could only ever show a (b's probability 0), though the log says 0.5
    logged = [
        LoggedImpression("s", "i", ("a", "b"), "a", 1.0, 1.0, (0.1, 0.2), (1.0, 0.0))
        for _ in range(20)
    ]
    with pytest.raises(NoOverlap):
        evaluate(logged, UniformPolicy(), min_impressions=10)
    # tolerated when the caller allows that share
    evaluate(logged, UniformPolicy(), min_impressions=10, max_unsupported_share=0.5)


def test_a_target_that_never_agrees_with_the_logs_is_no_overlap() -> None:
    # b is in the logging support (probability 0.5) but was never shown
    logged = [
        LoggedImpression("s", "i", ("a", "b"), "a", 0.5, 1.0, (0.1, 0.2), (0.5, 0.5))
        for _ in range(20)
    ]
    with pytest.raises(NoOverlap, match="never chooses"):
        evaluate(logged, VariantPolicy("b"), min_impressions=10)


def test_logged_impression_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not among"):
        LoggedImpression("s", "i", ("a",), "b", 0.5, 1.0, (0.1,))
    with pytest.raises(ValueError, match="propensity"):
        LoggedImpression("s", "i", ("a",), "a", 0.0, 1.0, (0.1,))
    with pytest.raises(ValueError, match="one value per candidate"):
        LoggedImpression("s", "i", ("a", "b"), "a", 0.5, 1.0, (0.1,))


def test_thompson_goes_through_the_allocators_probabilities() -> None:
    counts = [("a", 500, 10), ("b", 500, 25), ("c", 0, 0)]
    got = thompson_probabilities(counts, min_propensity=0.05, draws=5000, seed=3)
    arms = [Arm(*c) for c in counts]
    prior = DecisionRule().pooled_prior(arms)
    want = allocation_probabilities(
        arms, min_propensity=0.05, prior_a=prior.alpha, prior_b=prior.beta, draws=5000, seed=3
    )
    assert got == want
    assert sum(got.values()) == pytest.approx(1.0) and min(got.values()) >= 0.05


def test_thompson_policy_from_logs_counts_each_context() -> None:
    logged = [
        LoggedImpression("s", "i", ("a", "b"), v, 0.5, r, (0.1, 0.2))
        for v, r in [("a", 0.0)] * 300 + [("b", 1.0)] * 30 + [("b", 0.0)] * 270
    ]
    policy = ThompsonPolicy.from_logs(logged)
    assert policy.counts[("s", "i", "a")] == (300, 0)
    assert policy.counts[("s", "i", "b")] == (300, 30)
    probs = policy.probabilities(logged[0])
    assert probs.sum() == pytest.approx(1.0) and probs[1] > 0.99


def test_parse_policy_names() -> None:
    assert parse_policy("uniform").name == "uniform"
    assert parse_policy("model").name == "model"
    assert parse_policy("variant=v1").name == "variant=v1"
    assert parse_policy("thompson", units(4)).name == "thompson"
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy("greedy")
    assert np.allclose(VariantPolicy("b").probabilities(units(1)[0]), [0.0, 1.0])
