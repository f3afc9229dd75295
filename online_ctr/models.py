"""Registered online CTR models (River estimators) and their factory.

The default is a logistic regression trained by FTRL-Proximal (McMahan et al.
2013): per-feature adaptive step sizes suit sparse one-hot crosses (rare
features keep large steps, frequent ones settle), which is what plain SGD with
one fixed rate gets wrong, and its L1 term zeroes the many crosses that carry
no signal. On the simulator (``bench/bench_model.py --events 50000 --seed 7``)
it reached progressive NE 0.976 against 1.001 for AdaGrad (lr 0.02) and 0.984
for a tuned Vowpal Wabbit, with the oracle at 0.947.
Factorisation machines run at under 100 events/s here and are not registered.

>>> model = make_model("default")
>>> model.learn_one({"seg.device=mobile": 1.0}, True)
>>> 0.0 < model.predict_proba_one({"seg.device=mobile": 1.0})[True] < 1.0
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import linear_model, optim

ModelFactory = Callable[[int], Any]


def _adagrad(seed: int) -> Any:
    return linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(lr=0.02),
        l2=1e-6,
        intercept_init=-3.5,
        intercept_lr=0.01,
    )


def _ftrl(seed: int) -> Any:
    return linear_model.LogisticRegression(
        optimizer=optim.FTRLProximal(alpha=0.1, beta=1.0, l1=1.0, l2=1.0),
        intercept_init=-3.5,
        intercept_lr=0.01,
    )


MODELS: dict[str, ModelFactory] = {
    "default": _ftrl,
    "adagrad": _adagrad,
    "ftrl": _ftrl,
}


def make_model(name: str = "default", seed: int = 0) -> Any:
    """A fresh River classifier by registered name (``seed`` for stochastic ones)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    return factory(seed)
