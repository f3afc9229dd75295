"""Champion against challenger: an always-valid sequential rule on paired log loss.

Both arms (the CTR model on the champion encoder, the CTR model on the
challenger encoder) score the *same* labelled examples, so every example
gives one paired difference

    d_i = logloss_champion_i - logloss_challenger_i   (nats; > 0: challenger better)

(:func:`logloss_advantage` computes it with the clipping of
:mod:`~online_ctr.metrics`, so the sign cannot be got wrong at the call site).
Pairing removes the example-to-example variance that both arms share (a
click costs both models several nats): each arm's log loss has a standard
deviation of about one nat, while ``d`` between two CTR models that differ
only in their encoder varies far less (``docs/measurements.md``).

Why an always-valid rule
------------------------
The stream looks at the comparison after every batch, for as long as it
takes. A fixed-n t-test read after every batch is a different test at every
look, and the chance that *some* look crosses its 95% line grows with the
number of looks (the unit test measures it: several times the nominal rate
over 200 looks). The remedy (Robbins' mixtures; Johari et al.'s mixture SPRT
used by Optimizely; Eppo's sequential analysis; Howard et al. 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences") is a
*confidence sequence*: intervals ``(lo_n, hi_n)`` that contain the true mean
at all ``n`` *simultaneously* with probability at least ``1 - alpha``. Then
any rule that reads them whenever it likes, stops whenever it likes and
decides on what it sees inherits the error bound.

Which confidence sequence, and why
----------------------------------
The predictable plug-in empirical-Bernstein (PrPl-EB) confidence sequence of
Waudby-Smith & Ramdas (2023, "Estimating means of bounded random variables
by betting", JRSSB, Theorem 2), on the differences clipped to
``[-clip, clip]`` and rescaled to ``x_i = (d_i + clip) / (2 clip)`` in [0, 1]:

* **Nonparametric and nonasymptotic.** Log-loss differences are skewed and
  heavy-tailed (mostly small on non-clicks, a few nats on clicks). The
  normal-mixture SPRT behind Optimizely and Eppo assumes Gaussian (or
  CLT-approximated) increments; PrPl-EB needs only boundedness, which the
  clip supplies, and holds at every ``n``, not asymptotically.
* **Variance-adaptive.** The range after clipping is ``2 clip`` nats but
  the standard deviation is far smaller: a range-only bound such as
  Hoeffding's (River's Hoeffding race drops a candidate when
  ``perf + sqrt(ln(1/delta) / (2n)) < best``) would be ``2 clip / std``
  times wider. Empirical Bernstein pays mostly for the variance it
  estimates. Not only: the bets are capped (``lambda_i <= 1/2`` on the
  [0, 1] scale), so the radius keeps a term ``~ 4 clip log(2/alpha) / n``
  nats that no small variance removes, which is why the stream clips
  tighter (``BERTCTR_PROMOTION_CLIP``, see
  :meth:`online_ctr.promotion.duel.EncoderDuel.challenge`).
* **O(1) state.** Everything is a running sum, so the comparison is a
  handful of floats in a checkpoint and :meth:`SequentialComparison.update_many`
  is a few ``cumsum`` over the batch.

The construction, with ``F_{i-1}`` the history before example ``i``:
``mu_hat_i = (1/2 + sum_{j<=i} x_j) / (i + 1)``,
``sigma2_hat_i = (1/4 + sum_{j<=i} (x_j - mu_hat_j)^2) / (i + 1)``, the bet
``lambda_i = min(sqrt(2 log(2/alpha) / (sigma2_hat_{i-1} i log(1 + i))), 1/2)``
(predictable: it uses only examples before ``i``), and the penalty
``psi_i = (x_i - mu_hat_{i-1})^2 (-log(1 - lambda_i) - lambda_i)``. Then

    lo_n, hi_n = S_n / L_n -/+ (log(2/alpha) + P_n) / L_n

with ``L_n = sum lambda_i``, ``S_n = sum lambda_i x_i``, ``P_n = sum psi_i``,
mapped back to nats and intersected with ``[-clip, clip]``.

The guarantee
-------------
Let ``m_i = E[clip(d_i) | F_{i-1}]`` be the conditional mean advantage of
example ``i``; it may drift as both CTR models learn. By Fan et al.'s
inequality ``exp(sum lambda_i (x_i - m_i) - P_n)`` is a nonnegative
supermartingale, so by Ville's inequality

    P(there is an n >= 1 with  m~_n not in (lo_n, hi_n))  <=  alpha,

and each side fails with probability at most ``alpha / 2``, where
``m~_n = sum lambda_i m_i / sum lambda_i`` is the bet-weighted average of the
conditional means (simply the mean when the advantage does not drift). For
the decisions of :class:`SequentialComparison` that means, whenever and
however often it is checked:

* if ``m_i <= margin`` for every example (the challenger is not better by
  more than the margin), ``P(it is ever promoted) <= alpha / 2``;
* if ``m_i >= margin`` for every example, ``P(it is ever retired before
  max_examples) <= alpha / 2``.

The bound is about the *clipped* difference. It is the true mean whenever
``|d_i| <= clip``: at 5 nats (this class's generic default) it takes one
arm predicting a probability ``e^5 ~ 148`` times the other's on the same
example to be clipped, at the stream's 1 nat ``e ~ 2.7`` times;
:attr:`SequentialComparison.clipped` counts the examples where that failed,
so a report can show when the bound speaks about something else. Early
examples carry larger bets ``lambda_i``, so while the CTR models warm up
they weigh more in ``m~_n``; ``min_examples`` keeps the warm-up from
deciding alone.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> better = SequentialComparison()
>>> better.update_many(rng.normal(0.05, 0.5, 30_000))  # challenger 0.05 nats better
>>> better.decision(), better.decided_at is not None and better.decided_at < 30_000
('promote', True)
>>> lo, hi = better.interval
>>> bool(0.0 < lo < 0.05 < hi)
True
>>> same = SequentialComparison(max_examples=2_000)
>>> same.update_many([0.0] * 2_000)  # identical arms: never promoted, ties keep the champion
>>> same.decision()
'retire'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Decision",
    "SequentialComparison",
    "confidence_sequence",
    "logloss_advantage",
]

log = logging.getLogger(__name__)

Decision = Literal["promote", "retire", "continue"]

#: Cap on the bet ``lambda_i`` (Waudby-Smith & Ramdas use 1/2 or 3/4; any
#: value below 1 keeps the bound valid, a smaller one keeps early bets tame).
BET_CAP = 0.5
#: Probabilities are clipped as in :mod:`~online_ctr.metrics`, so the
#: differences add up to the difference of the reported log losses.
EPS = 1e-7

FloatArray = npt.NDArray[np.float64]


def logloss_advantage(p_champion: float, p_challenger: float, clicked: bool) -> float:
    """The challenger's log-loss advantage on one example, in nats (> 0: challenger better).

    One helper for the sign convention, so the stream cannot feed the rule
    ``challenger - champion`` by mistake.

    >>> round(logloss_advantage(0.1, 0.2, True), 4)  # -log(0.1) + log(0.2)
    0.6931
    >>> logloss_advantage(0.3, 0.3, False)
    0.0
    """
    pa = min(max(p_champion, EPS), 1.0 - EPS)
    pb = min(max(p_challenger, EPS), 1.0 - EPS)
    if clicked:
        return math.log(pb) - math.log(pa)
    return math.log1p(-pb) - math.log1p(-pa)


class _Sums:
    """The running sums of the PrPl-EB confidence sequence on ``x`` in [0, 1].

    Kept as plain floats (or arrays for many streams at once) so that one
    vectorised :meth:`advance` serves the streaming class and simulations.
    """

    def __init__(self) -> None:
        self.n = 0  # examples seen
        self.sum_x: Any = 0.0  # sum x_j, for mu_hat
        self.sum_dev: Any = 0.0  # sum (x_j - mu_hat_j)^2, for sigma2_hat
        self.sum_lam: Any = 0.0  # L_n
        self.sum_lam_x: Any = 0.0  # S_n
        self.sum_pen: Any = 0.0  # P_n

    def advance(self, x: FloatArray, log_term: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Add ``x`` (last axis is time); return ``L, S, P`` after each of its elements."""
        m = x.shape[-1]
        i = self.n + np.arange(1, m + 1, dtype=np.float64)
        lead = (*x.shape[:-1], 1)
        sum_x = self.sum_x + np.cumsum(x, axis=-1)
        mu = (0.5 + sum_x) / (i + 1.0)
        mu_first = np.broadcast_to((0.5 + self.sum_x) / (self.n + 1.0), lead)
        mu_prev = np.concatenate([mu_first, mu[..., :-1]], axis=-1)
        sum_dev = self.sum_dev + np.cumsum((x - mu) ** 2, axis=-1)
        var = (0.25 + sum_dev) / (i + 1.0)
        var_first = np.broadcast_to((0.25 + self.sum_dev) / (self.n + 1.0), lead)
        var_prev = np.concatenate([var_first, var[..., :-1]], axis=-1)
        lam = np.minimum(np.sqrt(2.0 * log_term / (var_prev * i * np.log1p(i))), BET_CAP)
        pen = (x - mu_prev) ** 2 * (-np.log1p(-lam) - lam)
        sum_lam = self.sum_lam + np.cumsum(lam, axis=-1)
        sum_lam_x = self.sum_lam_x + np.cumsum(lam * x, axis=-1)
        sum_pen = self.sum_pen + np.cumsum(pen, axis=-1)
        self.n += m
        self.sum_x, self.sum_dev = sum_x[..., -1], sum_dev[..., -1]
        self.sum_lam, self.sum_lam_x, self.sum_pen = (
            sum_lam[..., -1],
            sum_lam_x[..., -1],
            sum_pen[..., -1],
        )
        return sum_lam, sum_lam_x, sum_pen


def _bounds(
    sum_lam: Any, sum_lam_x: Any, sum_pen: Any, log_term: float, clip: float
) -> tuple[Any, Any]:
    """``(lo, hi)`` in nats from the running sums (``L_n > 0``)."""
    centre = sum_lam_x / sum_lam
    radius = (log_term + sum_pen) / sum_lam
    lo = np.clip((centre - radius) * 2.0 * clip - clip, -clip, clip)
    hi = np.clip((centre + radius) * 2.0 * clip - clip, -clip, clip)
    return lo, hi


def _check(alpha: float, clip: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha {alpha!r} is not in (0, 1)")
    if not 0.0 < clip < math.inf:
        raise ValueError(f"clip {clip!r} is not a positive number of nats")


def _as_array(ds: Iterable[float] | npt.NDArray[Any]) -> FloatArray:
    arr = (
        np.asarray(ds, dtype=np.float64)
        if isinstance(ds, np.ndarray)
        else np.fromiter(ds, dtype=np.float64)
    )
    if np.isnan(arr).any():
        raise ValueError("a log-loss difference is NaN")
    return arr


def confidence_sequence(
    d: npt.ArrayLike, alpha: float = 0.05, clip: float = 5.0
) -> tuple[FloatArray, FloatArray]:
    """``(lo, hi)`` after every element of ``d``, along its last axis.

    The whole path of the confidence sequence at once, for simulations and
    offline replays: row ``k`` of a 2-D ``d`` is an independent stream. It is
    the same computation as :class:`SequentialComparison`, which keeps only
    the last point.

    >>> lo, hi = confidence_sequence([0.1, -0.2, 0.3] * 1000)
    >>> lo.shape, bool(lo[-1] < 0.0667 < hi[-1]), bool(hi[-1] - lo[-1] < hi[9] - lo[9])
    ((3000,), True, True)
    """
    _check(alpha, clip)
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError("d needs at least one element along its last axis")
    if np.isnan(arr).any():
        raise ValueError("a log-loss difference is NaN")
    x = (np.clip(arr, -clip, clip) + clip) / (2.0 * clip)
    log_term = math.log(2.0 / alpha)
    lo, hi = _bounds(*_Sums().advance(x, log_term), log_term, clip)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


class SequentialComparison:
    """Promote or retire a challenger on the paired log-loss differences of a stream.

    Feed it ``d_i = logloss_champion_i - logloss_challenger_i`` as they come
    (:func:`logloss_advantage`). After every example from ``min_examples``
    on, it checks the ``1 - alpha`` confidence sequence of the mean advantage
    (module docstring) against ``margin``:

    * ``lo > margin``: **promote**, the challenger is better by more than
      the margin (false-promotion probability ``<= alpha / 2``);
    * ``hi <= margin``: **retire**, it is significantly *not* better by the
      margin (worse, or better by less);
    * at ``max_examples`` with neither: **retire**. Ties go to the champion:
      the version that serves keeps serving unless the challenger proved
      itself within the budget, and the budget bounds how long a second
      model is paid for.

    A decision is final once made (:attr:`decided_at` says at which ``n``):
    the sums keep counting later examples for the report, the verdict does
    not change. Since the check runs after every example, the verdict does
    not depend on how the stream batches its calls.

    Parameters
    ----------
    alpha
        Total error of the confidence sequence; each decision errs with
        probability at most ``alpha / 2``.
    margin
        Advantage in nats per example the challenger must beat. 0 asks for
        "better at all"; raise it when switching encoders has a cost
        (re-embedding the catalogue, a cold cache) that a tiny gain would
        not repay.
    max_examples
        Budget after which an undecided comparison retires the challenger.
        At a standard deviation of 0.5 nats the half-width at 200,000
        examples is ~0.005 nats, so an advantage of 0.01 nats is found well
        inside the default (simulated in ``docs/measurements.md``).
    min_examples
        No decision before this many examples. Validity does not need it
        (the bound holds from ``n = 1``); it keeps the first minutes, when
        both CTR models are warming up, from deciding alone.
    clip
        Differences are clipped to ``[-clip, clip]`` nats before they count
        (:attr:`clipped` counts how many were); the bound needs a finite
        range, and a smaller clip is a tighter range but speaks about the
        clipped mean.
    """

    #: class defaults so that comparisons pickled before the fields existed load
    decided_interval: tuple[float, float] | None = None
    _sum_sq = 0.0

    def __init__(
        self,
        alpha: float = 0.05,
        margin: float = 0.0,
        max_examples: int = 200_000,
        min_examples: int = 500,
        clip: float = 5.0,
    ) -> None:
        _check(alpha, clip)
        if not -clip < margin < clip:
            raise ValueError(f"margin {margin!r} is not inside (-clip, clip)")
        if not 0 <= min_examples <= max_examples or max_examples < 1:
            raise ValueError("need 0 <= min_examples <= max_examples and max_examples >= 1")
        self.alpha = alpha
        self.margin = margin
        self.max_examples = max_examples
        self.min_examples = min_examples
        self.clip = clip
        self.clipped = 0
        self.decided_at: int | None = None
        #: ``(lo, hi)`` at :attr:`decided_at`: what the verdict rests on. The
        #: running :attr:`interval` moves on with later examples of the same
        #: batch (and after), so a record of the decision must quote this one.
        self.decided_interval: tuple[float, float] | None = None
        self._log_term = math.log(2.0 / alpha)
        self._sums = _Sums()
        self._sum_sq = 0.0  # sum of squared clipped differences, for :attr:`std`
        self._decision: Decision = "continue"

    @property
    def n(self) -> int:
        """Examples seen."""
        return self._sums.n

    @property
    def mean(self) -> float | None:
        """Mean clipped advantage in nats (``None`` before the first example).

        The plain mean, for the report; the interval is centred on the
        bet-weighted mean, so it need not sit in its middle.
        """
        if self.n == 0:
            return None
        return float(self._sums.sum_x / self.n * 2.0 * self.clip - self.clip)

    @property
    def std(self) -> float | None:
        """Standard deviation of the clipped differences in nats (``None`` before two).

        What sets how long a comparison takes: the interval's half-width
        shrinks roughly as ``std * sqrt(log(n) / n)``, so an advantage
        ``delta`` needs on the order of ``(3 std / delta)^2`` examples.
        """
        if self.n < 2 or self.mean is None:
            return None
        mean = self.mean
        var = (self._sum_sq - self.n * mean * mean) / (self.n - 1)
        return math.sqrt(max(var, 0.0))

    @property
    def interval(self) -> tuple[float, float]:
        """``(lo, hi)`` in nats at level ``1 - alpha``, valid at every ``n`` at once."""
        if self.n == 0:
            return (-self.clip, self.clip)
        s = self._sums
        lo, hi = _bounds(s.sum_lam, s.sum_lam_x, s.sum_pen, self._log_term, self.clip)
        return (float(lo), float(hi))

    def decision(self) -> Decision:
        """``"promote"``, ``"retire"`` or ``"continue"``; final once not ``"continue"``."""
        return self._decision

    def update(self, d: float) -> None:
        """Add one paired difference (``update_many`` is the fast path for a batch)."""
        self.update_many(np.array([d], dtype=np.float64))

    def update_many(self, ds: Iterable[float] | npt.NDArray[Any]) -> None:
        """Add a batch of paired differences, checking the rule after each one."""
        arr = _as_array(ds)
        if arr.ndim != 1:
            raise ValueError("update_many takes a 1-D batch")
        if arr.size == 0:
            return
        self.clipped += int(np.count_nonzero(np.abs(arr) > self.clip))
        clipped = np.clip(arr, -self.clip, self.clip)
        self._sum_sq += float(np.sum(clipped**2))
        x = (clipped + self.clip) / (2.0 * self.clip)
        first = self.n + 1
        lo, hi = _bounds(*self._sums.advance(x, self._log_term), self._log_term, self.clip)
        if self._decision == "continue":
            self._decide(first, np.asarray(lo), np.asarray(hi))

    def _decide(self, first: int, lo: FloatArray, hi: FloatArray) -> None:
        """Latch the first decision among examples ``first .. first + len(lo) - 1``."""
        ns = np.arange(first, first + lo.size)
        live = (ns >= self.min_examples) & (ns <= self.max_examples)
        crossed = live & ((lo > self.margin) | (hi <= self.margin))
        if crossed.any():
            k = int(np.argmax(crossed))
            self._decision = "promote" if lo[k] > self.margin else "retire"
            self.decided_at = int(ns[k])
            self.decided_interval = (float(lo[k]), float(hi[k]))
            reason = f"interval ({lo[k]:.5f}, {hi[k]:.5f}) against margin {self.margin}"
        elif ns[-1] >= self.max_examples:
            self._decision = "retire"
            self.decided_at = self.max_examples
            at = self.max_examples - first
            self.decided_interval = (float(lo[at]), float(hi[at]))
            reason = "budget spent without a significant advantage; ties keep the champion"
        else:
            return
        log.info("challenger %s at n=%d: %s", self._decision, self.decided_at, reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``bertctr stats --json`` shows it under ``encoder``)."""
        lo, hi = self.interval
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "lo": lo,
            "hi": hi,
            "decision": self._decision,
            "decided_at": self.decided_at,
            "decided_interval": list(self.decided_interval) if self.decided_interval else None,
            "margin": self.margin,
            "alpha": self.alpha,
            "max_examples": self.max_examples,
            "clipped": self.clipped,
        }

    def __repr__(self) -> str:
        lo, hi = self.interval
        return (
            f"SequentialComparison(n={self.n}, interval=({lo:.4f}, {hi:.4f}), "
            f"margin={self.margin}, decision={self._decision!r})"
        )
