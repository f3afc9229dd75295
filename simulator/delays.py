"""How long after an impression its click arrives.

Real click delays are heavy-tailed: most clicks come within seconds to
minutes, and a few percent come back much later (a tab left open, a second
look), after the attribution window has closed. That tail is what the join's
late corrections and the learner's fake-negative weighting exist for, so the
simulator draws it explicitly: a lognormal body, plus a share
``late_click_share`` drawn from a Pareto tail that starts at the window and is
truncated at ``click_delay_cap_s`` (so a late click still finds its
impression within the join's memory horizon).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.config import SimConfig

__all__ = ["ClickDelays"]


class ClickDelays:
    """Draws click delays (seconds) for one configuration."""

    def __init__(self, config: SimConfig) -> None:
        self._mu = math.log(config.click_delay_median_s)
        self._sigma = config.click_delay_sigma
        self._late_share = config.late_click_share
        self._alpha = config.late_tail_alpha
        self._window = config.attribution_window_s
        self._cap = config.click_delay_cap_s

    def draw(self, rng: np.random.Generator) -> float:
        """One delay in seconds, at most ``click_delay_cap_s``."""
        if rng.random() < self._late_share:
            return self._tail(float(rng.random()))
        return min(float(rng.lognormal(self._mu, self._sigma)), self._cap)

    def _tail(self, u: float) -> float:
        """Inverse CDF of a Pareto(alpha) on [window, cap]."""
        ratio = (self._window / self._cap) ** self._alpha
        return float(self._window / (1.0 - u * (1.0 - ratio)) ** (1.0 / self._alpha))

    def share_within(self, seconds: float) -> float:
        """Probability that a delay is at most ``seconds``."""
        if seconds <= 0:
            return 0.0
        if seconds >= self._cap:
            return 1.0
        z = (math.log(seconds) - self._mu) / self._sigma
        body = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        tail = 0.0
        if seconds > self._window:
            full = 1.0 - (self._window / self._cap) ** self._alpha
            tail = (1.0 - (self._window / seconds) ** self._alpha) / full
        return (1.0 - self._late_share) * body + self._late_share * tail
