"""Fit one group's binomial regression and read each attribute's effect off it.

A binomial GLM (logit link) on all attributes at once, so attributes that
travel together (bright shots are often less cluttered) do not take each
other's credit. Standard errors are cluster-robust by item: variants of one
item share its appeal, and a popular item's images are not independent
evidence. The GLM and its sandwich covariance are statsmodels'.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats

from online_ctr.insights.design import Contrast, Design

__all__ = ["RawEffect", "fit_group"]

log = logging.getLogger(__name__)

#: 95% intervals
Z95 = float(stats.norm.ppf(0.975))
#: a larger change in log-odds (a 5e8-fold lift) only comes from a separated fit in a
#: tiny group; reported capped so that the reply stays finite JSON (its p-value says the rest)
MAX_LOG_ODDS = 20.0


@dataclass(frozen=True)
class RawEffect:
    """One attribute's effect in one group, before the false-discovery control."""

    contrast: Contrast
    #: change in log-odds of a click (per +1 sd, or tag vs its comparison)
    log_odds: float
    se: float
    p_value: float

    @property
    def lift(self) -> float:
        """Relative CTR lift: exp(log-odds) - 1, exact for rare clicks."""
        return _lift(self.log_odds)

    @property
    def lift_interval(self) -> tuple[float, float]:
        return _lift(self.log_odds - Z95 * self.se), _lift(self.log_odds + Z95 * self.se)


def _lift(log_odds: float) -> float:
    """exp(x) - 1 with x capped at :data:`MAX_LOG_ODDS`, so a separated fit stays finite JSON."""
    return math.expm1(max(-MAX_LOG_ODDS, min(MAX_LOG_ODDS, log_odds)))


def fit_group(design: Design) -> list[RawEffect]:
    """Every contrast's estimate, standard error and two-sided p-value."""
    if not design.contrasts:
        return []
    model = sm.GLM(design.endog, design.exog, family=sm.families.Binomial())
    with warnings.catch_warnings():
        # a perfect fit in a tiny group warns; its huge errors already say so
        warnings.simplefilter("ignore")
        result = model.fit(cov_type="cluster", cov_kwds={"groups": design.items})
    params = np.asarray(result.params, dtype=np.float64)
    cov = np.asarray(result.cov_params(), dtype=np.float64)
    out = []
    for contrast in design.contrasts:
        estimate = float(contrast.vector @ params)
        variance = float(contrast.vector @ cov @ contrast.vector)
        se = math.sqrt(variance) if variance > 0 and math.isfinite(variance) else math.inf
        if not math.isfinite(estimate):  # a failed fit in a tiny group: no evidence either way
            estimate, se = 0.0, math.inf
        p = float(2.0 * stats.norm.sf(abs(estimate) / se)) if math.isfinite(se) else 1.0
        out.append(RawEffect(contrast, estimate, se, p))
    log.debug("group %s: %d effects from %d images", design.group, len(out), design.images)
    return out
