"""The seam between the learning code and a CTR model: two small protocols.

:class:`CtrModel` is what :class:`~online_ctr.learner.Learner` needs of any
model, River's ``base.Classifier`` cut down to the two calls it makes.
:class:`LinearCtrModel` is a logistic regression in closed form whose
weights can be read, set and forgotten feature by feature: what the encoder
duel needs to carry image weights over (:mod:`online_ctr.promotion.duel`) and what the
serving view needs to freeze them (:mod:`online_ctr.frozen`). Both are
``runtime_checkable``, so code with a real branch asks ``isinstance``
instead of probing attributes; ``tests/unit/online_ctr/models/test_model_contract.py``
checks every registered model against the protocols it claims.

>>> from online_ctr.models.ftrl import FTRLProximalClassifier
>>> from online_ctr.models.bayes import BayesianLogisticRegression
>>> isinstance(FTRLProximalClassifier(), LinearCtrModel)
True
>>> isinstance(BayesianLogisticRegression(), CtrModel)
True
>>> isinstance(BayesianLogisticRegression(), LinearCtrModel)
False
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["CtrModel", "Features", "LinearCtrModel"]

#: A feature dict as a model takes it. River types it ``dict[FeatureName, Any]``;
#: the key is ``Any`` here because dict keys are invariant, so River's
#: ``Hashable`` would refuse the project's ``dict[str, float]``.
Features = dict[Any, float]


@runtime_checkable
class CtrModel(Protocol):
    """A binary click model that learns one weighted example at a time.

    The contract (River's ``base.Classifier``, as far as it is used):
    ``predict_proba_one(x)`` returns ``{False: 1 - p, True: p}`` with ``p``
    in [0, 1] and never changes the model; ``learn_one(x, y, w)`` learns
    ``x`` with label ``y`` and sample weight ``w`` (a larger ``w`` moves the
    model further). Neither mutates ``x``; unseen and missing features are
    allowed; the model pickles and resumes exactly.
    """

    def learn_one(self, x: Features, y: bool, w: float = 1.0) -> None:
        """Learn one example ``x`` with label ``y`` (clicked) and sample weight ``w``."""
        ...

    def predict_proba_one(self, x: Features) -> Mapping[Any, float]:
        """``{False: 1 - p, True: p}``: the click probability of ``x``."""
        ...


@runtime_checkable
class LinearCtrModel(CtrModel, Protocol):
    """A :class:`CtrModel` that is logistic regression in closed form, with settable weights.

    The contract, beyond :class:`CtrModel`: ``predict_proba_one(x)[True]``
    is :func:`online_ctr.models.ftrl.sigmoid` of ``intercept + sum(weights[f] * v)``
    over the features of ``x`` (a feature absent from :attr:`weights` weighs
    0), so a copy of the weights predicts exactly what the model does;
    :meth:`set_weights` makes each given feature's weight exactly that;
    :meth:`forget` drops the selected features' learned state.
    """

    @property
    def intercept(self) -> float:
        """The intercept's log-odds."""
        ...

    @property
    def weights(self) -> Mapping[Any, float]:
        """The non-zero weights, by feature (a copy)."""
        ...

    def set_weights(self, weights: Mapping[Any, float], *, fresh: bool = True) -> None:
        """Give each feature in ``weights`` exactly that weight.

        ``fresh``: the feature learns at a new feature's pace from there on.
        """
        ...

    def forget(self, which: Callable[[Any], bool]) -> int:
        """Drop the learned state of every feature ``which`` selects; return how many."""
        ...
