"""The registry of online CTR models (River classifiers) and their factory.

Every entry is a :class:`~online_ctr.models.protocol.CtrModel` and keeps the
contract in ``tests/unit/online_ctr/models/test_model_contract.py``: ``ftrl``
(:class:`FTRLProximalClassifier`), ``bayes``
(:class:`BayesianLogisticRegression`), and River's ``LogisticRegression``
with FTRL (``river-ftrl``) or AdaGrad (``river-adagrad``).

``default`` is ``ftrl``: as good as ``bayes`` on log loss, the method
production CTR systems converged on, and its L1 keeps the model sparse.
``bench/bench_model.py`` compares them (figures in ``docs/measurements.md``).

``with_content=True`` (the features carry image embeddings) makes the
variant ids residuals: ``ftrl`` then gives every variant-id feature
(:data:`~online_ctr.features.VARIANT_ID` in its name) an L1 of 5 instead of
0.5, so a variant's own weight stays 0 until its clicks say more than its
image does. Without embeddings the ids are the only thing that tells
variants apart, so it is off there. River's ``FMClassifier`` is not
registered (far slower, and worse with the few clicks a stream has); nor is
plain SGD with one fixed rate: one rate cannot suit both the intercept (seen
every time) and a cross seen twice.

>>> model = make_model("default")
>>> model.learn_one({"seg.device=mobile": 1.0}, True)
>>> 0.0 < model.predict_proba_one({"seg.device=mobile": 1.0})[True] < 1.0
True
"""

from __future__ import annotations

from collections.abc import Callable

from river import linear_model, optim

from online_ctr.features import VARIANT_ID
from online_ctr.models.bayes import BayesianLogisticRegression
from online_ctr.models.ftrl import FTRLProximalClassifier
from online_ctr.models.protocol import CtrModel

__all__ = ["CONTENT_VARIANT_ID_L1", "DEFAULT_MODEL", "MODELS", "ModelFactory", "make_model"]

#: a factory takes a seed (for stochastic models; the registered ones are
#: deterministic) and whether the features carry image content (embeddings)
ModelFactory = Callable[[int, bool], CtrModel]

DEFAULT_MODEL = "ftrl"
#: log-odds of a 3% CTR: River's intercept starts here instead of at p = 0.5
_PRIOR_LOGIT = -3.5


#: L1 of variant-id features when image embeddings are among the features
CONTENT_VARIANT_ID_L1 = 5.0


def _ftrl(seed: int, with_content: bool) -> CtrModel:
    overrides = {VARIANT_ID: CONTENT_VARIANT_ID_L1} if with_content else None
    return FTRLProximalClassifier(
        alpha=0.07, beta=1.0, l1=0.5, l2=1.0, prior_ctr=0.03, l1_overrides=overrides
    )


def _bayes(seed: int, with_content: bool) -> CtrModel:
    return BayesianLogisticRegression(prior_var=0.03, bias_var=1.0, prior_ctr=0.03)


def _river_ftrl(seed: int, with_content: bool) -> CtrModel:
    return linear_model.LogisticRegression(
        optimizer=optim.FTRLProximal(alpha=0.1, beta=1.0, l1=1.0, l2=1.0),
        intercept_init=_PRIOR_LOGIT,
        intercept_lr=0.01,
    )


def _river_adagrad(seed: int, with_content: bool) -> CtrModel:
    return linear_model.LogisticRegression(
        optimizer=optim.AdaGrad(lr=0.02),
        l2=1e-6,
        intercept_init=_PRIOR_LOGIT,
        intercept_lr=0.01,
    )


MODELS: dict[str, ModelFactory] = {
    "ftrl": _ftrl,
    "bayes": _bayes,
    "river-ftrl": _river_ftrl,
    "river-adagrad": _river_adagrad,
}
MODELS["default"] = MODELS[DEFAULT_MODEL]


def make_model(name: str = "default", seed: int = 0, *, with_content: bool = False) -> CtrModel:
    """A fresh, untrained model by registered name.

    Parameters
    ----------
    name
        A key of :data:`MODELS`.
    seed
        Passed to the factory, for stochastic models.
    with_content
        The features will carry image embeddings, so variant ids are
        residuals (see the module docstring; only ``ftrl`` acts on it).

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    return factory(seed, with_content)
