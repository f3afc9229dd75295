"""A read-only view of a learned model for serving: the same predictions, computed faster.

FTRL keeps per-coordinate state (``z``, ``n``) and derives each weight from
it on every prediction (a square root, a sign and a division per feature);
that is right for a learner, which changes after every example, and
wasteful for the scoring API, which serves one snapshot for seconds to
minutes and never learns. :func:`frozen_predictor` turns a learner into a
function of a feature dict whose weights were derived once, when the
snapshot was loaded; ``bench/bench_api.py`` measures what it buys. Models
without a closed linear form (River's pipelines, the Bayesian one) are
served through their own ``predict_proba_one``.

The view copies the weights, so the learner may go on learning (in the
worker) without changing what the view predicts, and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from online_ctr.learner import Learner
from online_ctr.models.ftrl import sigmoid
from online_ctr.models.protocol import LinearCtrModel

__all__ = ["Predictor", "frozen_predictor"]

#: click probability of a feature dict
Predictor = Callable[[dict[str, float]], float]


def frozen_predictor(learner: Learner) -> Predictor:
    """``learner.predict_features``, with a linear model's weights derived once.

    A :class:`~online_ctr.models.protocol.LinearCtrModel` promises that its weights
    and intercept predict exactly what it does; any other model is served
    through its own ``predict_proba_one``.
    """
    model = learner.model
    if not isinstance(model, LinearCtrModel):
        return learner.predict_features
    weights: dict[Any, float] = dict(model.weights)
    intercept = model.intercept
    get = weights.get

    def predict(x: dict[str, float]) -> float:
        logit = intercept
        for feature, value in x.items():
            if value:
                w = get(feature)
                if w is not None:
                    logit += w * value
        return sigmoid(logit)

    return predict
