"""Logistic regression trained by FTRL-Proximal: the default CTR model.

Why FTRL-Proximal (McMahan et al. 2013, "Ad click prediction: a view from the
trenches"): every feature gets its own AdaGrad-style step size, so rare
one-hot crosses (an audience x a variant, seen a few dozen times) keep
learning fast while frequent ones settle; its L1 term keeps the many crosses
that carry no signal at exactly zero; and L2 shrinks the rest towards zero,
which is what a model that sees ~3 clicks per hundred impressions needs.

Why not River's ``LogisticRegression(optimizer=optim.FTRLProximal())``: there
the weight of a feature is refreshed only when the feature is next learned,
so predictions lag one occurrence behind (costly for sparse crosses), a
weight whose ``|z|`` falls back below ``l1`` keeps its stale value instead of
becoming 0, and the intercept is plain SGD with a fixed rate. Here weights
are computed from ``(z, n)`` whenever they are used, exactly as in the paper,
and the intercept is FTRL too (unregularised), started at the log-odds of
``prior_ctr`` so the first predictions are not 0.5. On the simulator this
learns slightly better than River's version, and faster
(``bench/bench_model.py``; figures in ``docs/measurements.md``).

>>> model = FTRLProximalClassifier()
>>> for _ in range(200):
...     model.learn_one({"seg.taste=t1": 1.0}, True)
...     model.learn_one({"seg.taste=t2": 1.0}, False)
>>> t1 = model.predict_proba_one({"seg.taste=t1": 1.0})[True]
>>> t2 = model.predict_proba_one({"seg.taste=t2": 1.0})[True]
>>> round(t1, 2), round(t2, 2)
(0.34, 0.07)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from river import base
from river.base.typing import ClfTarget, FeatureName

from online_ctr.models.protocol import LinearCtrModel

__all__ = ["FTRLProximalClassifier", "sigmoid"]

#: logits are clipped here, so one huge feature value cannot overflow exp()
MAX_LOGIT = 35.0


def sigmoid(logit: float) -> float:
    """The logistic function, with the logit clipped to ``[-35, 35]``."""
    t = min(max(logit, -MAX_LOGIT), MAX_LOGIT)
    return 1.0 / (1.0 + math.exp(-t))


class FTRLProximalClassifier(base.Classifier, LinearCtrModel):
    """Binary logistic regression with per-coordinate FTRL-Proximal updates.

    Parameters
    ----------
    alpha
        Per-coordinate learning rate scale (the paper's alpha). Lower is
        more conservative; tuned on the simulator: 0.07.
    beta
        Smooths the first steps of a new feature (the paper's beta).
    l1
        L1 strength; features whose accumulated gradient stays below it
        have weight exactly 0.
    l2
        L2 strength (shrinks every weight towards 0).
    prior_ctr
        The CTR predicted before anything is learned; the intercept starts
        at its log-odds and learns from there (unregularised).
    l1_overrides
        ``{name fragment: l1}``: a feature whose name contains the fragment
        gets that L1 instead of ``l1`` (the first matching fragment wins).
        Why: some features are residuals. With image embeddings in the
        features, a variant's id should only learn what its image does not
        show; at the default L1 each variant-id weight chases the noise of
        its own ~10 clicks and outvotes the embeddings when variants are
        ranked. An L1 of 5 keeps it at exactly 0 until the evidence for it
        outweighs that (see :func:`online_ctr.models.registry.make_model`).

    Notes
    -----
    ``learn_one(x, y, w)`` scales the gradient by the sample weight ``w``
    (e.g. fake-negative weights, :mod:`online_ctr.fnw`); ``w = 0`` learns
    nothing. Predicting never changes the model.
    """

    def __init__(
        self,
        alpha: float = 0.07,
        beta: float = 1.0,
        l1: float = 0.5,
        l2: float = 1.0,
        prior_ctr: float = 0.03,
        l1_overrides: Mapping[str, float] | None = None,
    ) -> None:
        overrides = dict(l1_overrides or {})
        if alpha <= 0 or beta < 0 or l1 < 0 or l2 < 0 or any(v < 0 for v in overrides.values()):
            raise ValueError("alpha must be > 0; beta, l1, l2 and l1_overrides must be >= 0")
        if not 0.0 < prior_ctr < 1.0:
            raise ValueError("prior_ctr must be in (0, 1)")
        self.alpha = alpha
        self.beta = beta
        self.l1 = l1
        self.l2 = l2
        self.prior_ctr = prior_ctr
        self.l1_overrides = overrides
        #: the overridden L1 of each feature seen that matches a fragment
        self._l1_of: dict[FeatureName, float] = {}
        self._z: dict[FeatureName, float] = {}
        self._n: dict[FeatureName, float] = {}
        self._bias_z = 0.0
        self._bias_n = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:
        # checkpoints written before l1_overrides existed load without them
        state.setdefault("l1_overrides", {})
        state.setdefault("_l1_of", {})
        self.__dict__.update(state)

    def _weight(self, feature: FeatureName) -> float:
        z = self._z.get(feature)
        if z is None:
            return 0.0
        l1 = self._l1_of.get(feature, self.l1) if self._l1_of else self.l1
        if abs(z) <= l1:
            return 0.0
        rate = (self.beta + math.sqrt(self._n[feature])) / self.alpha + self.l2
        return -(z - math.copysign(l1, z)) / rate

    def _first_seen(self, feature: FeatureName) -> None:
        """Record ``feature``'s overridden L1, if a fragment matches its name."""
        name = str(feature)
        for fragment, l1 in self.l1_overrides.items():
            if fragment in name:
                self._l1_of[feature] = l1
                return

    def forget(self, which: Callable[[FeatureName], bool]) -> int:
        """Drop the learned state of every feature ``which`` selects; returns how many.

        For a warm start: a challenger that sees new image embeddings keeps
        what the champion learned about everything else, and learns the
        image dimensions (whose meaning changed) from zero.
        """
        gone = [i for i in self._z if which(i)]
        for i in gone:
            del self._z[i]
            self._n.pop(i, None)
            self._l1_of.pop(i, None)
        return len(gone)

    def set_weights(self, weights: Mapping[FeatureName, float], *, fresh: bool = True) -> None:
        """Give each feature in ``weights`` exactly that weight.

        For a warm start that carries weights over from another model (a
        challenger whose image embedding is a linear map of the champion's,
        :mod:`online_ctr.promotion.weight_map`). ``fresh``: the feature's
        squared-gradient sum ``n`` restarts at 0, so it learns at a new
        feature's pace from that starting point (a carried weight is a good
        guess about a feature whose meaning changed, not a settled one: with
        the champion's ``n`` kept, a challenger could hardly move its image
        weights towards what the new embedding shows); else ``n`` is kept.
        ``z`` is solved from the weight formula of :meth:`_weight` (``w =
        -(z - sign(z) l1) / rate``), so its own L1 still applies: a weight
        set to 0 stays 0 until its gradients outweigh the L1, and FTRL's
        proximal term keeps a set weight where it is until gradients move it.
        """
        for feature, w in weights.items():
            if not math.isfinite(w):
                raise ValueError(f"weight of {feature!r} is not finite")
            if feature not in self._n:
                self._n[feature] = 0.0
                if self.l1_overrides:
                    self._first_seen(feature)
            elif fresh:
                self._n[feature] = 0.0
            if w == 0.0:
                self._z[feature] = 0.0
                continue
            l1 = self._l1_of.get(feature, self.l1) if self._l1_of else self.l1
            rate = (self.beta + math.sqrt(self._n[feature])) / self.alpha + self.l2
            self._z[feature] = -(w * rate + math.copysign(l1, w))

    @property
    def intercept(self) -> float:
        """The intercept's log-odds (prior plus what was learned)."""
        learned = -self._bias_z / ((self.beta + math.sqrt(self._bias_n)) / self.alpha)
        return math.log(self.prior_ctr / (1.0 - self.prior_ctr)) + learned

    @property
    def weights(self) -> dict[FeatureName, float]:
        """The non-zero weights, by feature (for inspection; built on each call)."""
        out = {i: self._weight(i) for i in self._z}
        return {i: w for i, w in out.items() if w != 0.0}

    def predict_logit_one(self, x: dict[FeatureName, Any]) -> float:
        """Log-odds of a click."""
        logit = self.intercept
        for i, xi in x.items():
            if xi:
                logit += self._weight(i) * xi
        return logit

    def predict_proba_one(self, x: dict[FeatureName, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        p = sigmoid(self.predict_logit_one(x))
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[FeatureName, Any], y: ClfTarget, w: float = 1.0) -> None:
        if w == 0.0:
            return
        active = {i: xi for i, xi in x.items() if xi}
        weights = {i: self._weight(i) for i in active}
        intercept = self.intercept
        logit = intercept + sum(weights[i] * xi for i, xi in active.items())
        g = w * (sigmoid(logit) - float(bool(y)))
        for i, xi in active.items():
            gi = g * xi
            n = self._n.get(i)
            if n is None:
                n = 0.0
                if self.l1_overrides:
                    self._first_seen(i)
            sigma = (math.sqrt(n + gi * gi) - math.sqrt(n)) / self.alpha
            self._z[i] = self._z.get(i, 0.0) + gi - sigma * weights[i]
            self._n[i] = n + gi * gi
        learned = intercept - math.log(self.prior_ctr / (1.0 - self.prior_ctr))
        sigma = (math.sqrt(self._bias_n + g * g) - math.sqrt(self._bias_n)) / self.alpha
        self._bias_z += g - sigma * learned
        self._bias_n += g * g
