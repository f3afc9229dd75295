"""Chance to win and risk of the arms of a test, from their Beta posteriors.

* **chance to win**: the probability that an arm has the highest CTR. With
  two arms it is exact (:func:`prob_beats`): Evan Miller's closed form for
  ``P(p_B > p_A)``, a finite sum over an integer Beta parameter summed in
  log space, or, when no parameter is an integer (the pooled prior of
  :mod:`online_ctr.ab.prior` makes them fractional) or the sum would exceed
  :data:`MAX_EXACT_TERMS` terms, ``int f_B(x) F_A(x) dx`` by scipy's
  adaptive quadrature (to ~1e-9). With three or more arms it is Monte
  Carlo: ``draws`` joint posterior samples from a seeded
  ``numpy.random.Generator``, deterministic for a given seed.
* **risk** (expected loss, GrowthBook's "risk"): for each arm,
  ``E[max(max_{j != i} p_j - p_i, 0)]``, the CTR expected to be lost by
  shipping it. Two arms: exact. With an integer parameter,
  ``E[max(p_B - p_A, 0)] = E[p_B] P(p_B' > p_A) - E[p_A] P(p_B > p_A')`` with
  ``p'`` the size-biased posterior ``Beta(alpha + 1, beta)`` (Stucchio's
  identity), two more of Miller's sums; without one,
  ``int F_A(x) (1 - F_B(x)) dx`` (the same expectation, as the integral of
  ``P(p_A <= x < p_B)``) by quadrature. Otherwise Monte Carlo on the
  same draws as the chance to win. The decision rule divides it by the arm's
  posterior mean (*relative risk*), so items whose CTRs differ tenfold compare.

>>> from online_ctr.ab.arm import Arm
>>> arms = [Arm("a", 1000, 30), Arm("b", 1000, 50)]
>>> {name: round(p, 3) for name, p in chance_to_win(arms).items()}
{'a': 0.011, 'b': 0.989}
>>> risk = expected_loss(arms)
>>> bool(risk["b"] < 0.0001 < 0.01 < risk["a"] < 0.03)
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import integrate, special

from online_ctr.ab.arm import Arm, Beta, check_names

__all__ = [
    "DEFAULT_DRAWS",
    "MAX_EXACT_TERMS",
    "Method",
    "analyse",
    "chance_to_win",
    "expected_loss",
    "prob_beats",
]

FloatArray = npt.NDArray[np.float64]
Method = Literal["exact", "monte_carlo"]

#: Monte Carlo draws of the joint posterior (standard error of a probability
#: at most 0.5 / sqrt(draws) = 0.0035).
DEFAULT_DRAWS = 20_000
#: Evan Miller's sum has one term per unit of the integer parameter it runs
#: over; beyond this many (a million clicks in one arm) quadrature is used.
MAX_EXACT_TERMS = 1_000_000


def _integer(value: float) -> int | None:
    return int(value) if value >= 1.0 and float(value).is_integer() else None


def _miller(a: Beta, b: Beta, n: int) -> float:
    """``P(p_b > p_a)`` by Evan Miller's sum over ``i < n = b.alpha`` (an integer).

    ``sum_i B(a.alpha + i, a.beta + b.beta) / ((b.beta + i) B(1 + i, b.beta) B(a.alpha, a.beta))``.
    Consecutive terms have the ratio
    ``(a.alpha + i)(b.beta + i) / ((a.alpha + a.beta + b.beta + i)(1 + i))``, so
    the log terms are one ``cumsum``; they are summed relative to their maximum.
    """
    log_first = float(special.betaln(a.alpha, a.beta + b.beta) - special.betaln(a.alpha, a.beta))
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


@functools.lru_cache(maxsize=4096)
def _quadrature(a: Beta, b: Beta) -> float:
    """``P(p_b > p_a)`` by adaptive quadrature, for any parameters (to ~1e-9).

    On the probability scale, ``P(p_b > p_a) = E[F_a(p_b)] = int_0^1
    F_a(Q_b(u)) du`` with ``Q_b`` the quantile function: the integrand is
    bounded and monotone, with no density singularity at 0 or 1 (a
    parameter below 1) to trip the quadrature. ``b`` is the narrower of the
    two (else ``1 - int F_b(Q_a(u)) du``), so the integrand is smooth.
    Cached: the decision rule asks for the same pair more than once.
    """
    flip = b.variance > a.variance
    narrow, wide = (a, b) if flip else (b, a)
    value, _ = integrate.quad(
        lambda u: float(
            special.betainc(wide.alpha, wide.beta, special.betaincinv(narrow.alpha, narrow.beta, u))
        ),
        0.0,
        1.0,
        epsabs=1e-11,
        epsrel=1e-9,
        limit=200,
    )
    total = 1.0 - value if flip else value
    return min(max(float(total), 0.0), 1.0)


def prob_beats(a: Beta, b: Beta) -> float:
    """Exact ``P(p_b > p_a)`` for independent Beta posteriors.

    Evan Miller's closed form needs an integer ``b.alpha``; by symmetry
    (``P(p_b > p_a) = 1 - P(p_a > p_b)`` and ``p -> 1 - p``) any one integer
    parameter among the four will do, and the one with the fewest terms is
    used. When none is an integer (a pooled prior) or the sum would exceed
    :data:`MAX_EXACT_TERMS` terms, the integral is computed by quadrature.

    >>> prob_beats(Beta(1.0, 1.0), Beta(2.0, 1.0))  # doctest: +ELLIPSIS
    0.666666666666...
    >>> round(prob_beats(Beta(1.0, 1.0), Beta(1.5, 1.0)), 12)  # int 1.5 x^1.5 dx = 3/5
    0.6
    """
    options: list[tuple[int, int]] = []  # (terms, which)
    for which, value in enumerate((b.alpha, a.alpha, a.beta, b.beta)):
        n = _integer(value)
        if n is not None and n <= MAX_EXACT_TERMS:
            options.append((n, which))
    if not options:
        return _quadrature(a, b)
    n, which = min(options)
    if which == 0:  # b.alpha integer
        return _miller(a, b, n)
    if which == 1:  # a.alpha integer: 1 - P(p_a > p_b)
        return 1.0 - _miller(b, a, n)
    if which == 2:  # a.beta integer: P(1 - p_a > 1 - p_b)
        return _miller(b.flipped(), a.flipped(), n)
    return 1.0 - _miller(a.flipped(), b.flipped(), n)  # b.beta integer


def _shortfall(a: Beta, b: Beta) -> float:
    """``E[max(p_b - p_a, 0)] = int_0^1 F_a(x) (1 - F_b(x)) dx`` by quadrature.

    The integrand is ``P(p_a <= x < p_b)``, bounded and smooth; outside
    ``[Q_a(1e-15), Q_b(1 - 1e-15)]`` it is below 1e-15.
    """
    lo = a.quantile(1e-15)
    hi = b.quantile(1.0 - 1e-15)
    if hi <= lo:
        return 0.0
    value, _ = integrate.quad(
        lambda x: float(special.betainc(a.alpha, a.beta, x) * special.betaincc(b.alpha, b.beta, x)),
        lo,
        hi,
        epsabs=1e-13,
        epsrel=1e-9,
        limit=200,
    )
    return max(float(value), 0.0)


def _exact_two(first: Beta, second: Beta) -> tuple[FloatArray, FloatArray]:
    """Chance to win and risk of two arms, exactly (Miller's sums or quadrature)."""
    p_second = prob_beats(first, second)
    params = (first.alpha, first.beta, second.alpha, second.beta)
    if any(_integer(v) is not None and v <= MAX_EXACT_TERMS for v in params):
        # E[max(p2 - p1, 0)] = E[p2] P(p2' > p1) - E[p1] P(p2 > p1'), p' size-biased.
        lift_second = prob_beats(first, second.size_biased())
        lift_first = prob_beats(first.size_biased(), second)
        loss_first = second.mean * lift_second - first.mean * lift_first
    else:
        loss_first = _shortfall(first, second)
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


def analyse(
    posteriors: Sequence[Beta], draws: int, seed: int
) -> tuple[FloatArray, FloatArray, Method]:
    """Chance to win and risk of each posterior, and how they were computed."""
    k = len(posteriors)
    if k == 0:
        return np.zeros(0), np.zeros(0), "exact"
    if k == 1:
        return np.ones(1), np.zeros(1), "exact"
    if k == 2:
        ctw, risk = _exact_two(posteriors[0], posteriors[1])
        return ctw, risk, "exact"
    ctw, risk = _monte_carlo(posteriors, draws, seed)
    return ctw, risk, "monte_carlo"


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
    check_names(arms)
    ctw, _, _ = analyse([a.posterior(prior_a, prior_b) for a in arms], draws, seed)
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
    check_names(arms)
    _, risk, _ = analyse([a.posterior(prior_a, prior_b) for a in arms], draws, seed)
    return {arm.name: float(r) for arm, r in zip(arms, risk, strict=True)}
