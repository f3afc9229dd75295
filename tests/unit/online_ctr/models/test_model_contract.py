"""The contract every registered online model keeps (River style).

Run against every entry of ``online_ctr.models.registry.MODELS``, each also as built
for features with image content (``with_content=True``, which makes variant
ids residuals): a model added to the registry is tested without touching
this file. Every model must be a :class:`~online_ctr.models.protocol.CtrModel`; a
model that claims :class:`~online_ctr.models.protocol.LinearCtrModel` (subclasses
it) must keep that contract too, and no model may match it without claiming
it (the duel and the serving view branch on it).
"""

from __future__ import annotations

import copy
import pickle
import random

import pytest
from river import base
from river.checks import check_estimator

from online_ctr.models.ftrl import sigmoid
from online_ctr.models.protocol import CtrModel, LinearCtrModel
from online_ctr.models.registry import MODELS, make_model

Stream = list[tuple[dict[str, float], bool]]


def stream(n: int, seed: int) -> Stream:
    """Sparse one-hot examples; ``f1`` clicks at 30%, everything else at 5%.

    The ``var=`` features are variant ids, which ``with_content`` models
    regularise on their own terms.
    """
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x = {
            f"f{rnd.randrange(20)}": 1.0,
            "pos_decay": rnd.random(),
            f"var={rnd.randrange(5)}": 1.0,
        }
        y = rnd.random() < (0.3 if "f1" in x else 0.05)
        out.append((x, y))
    return out


def build(name: str, seed: int = 0) -> CtrModel:
    """``name`` as registered, or ``name+content``: built with ``with_content=True``."""
    base, _, content = name.partition("+")
    return make_model(base, seed=seed, with_content=content == "content")


def trained(name: str, n: int = 300, seed: int = 0) -> CtrModel:
    model = build(name)
    for x, y in stream(n, seed):
        model.learn_one(x, y)
    return model


def p1(model: CtrModel, x: dict[str, float]) -> float:
    return float(model.predict_proba_one(x)[True])


NAMES = sorted(MODELS) + [f"{m}+content" for m in sorted(MODELS)]


def claims(model: CtrModel, protocol: type) -> bool:
    """Whether ``model``'s class says it keeps ``protocol`` (subclasses it, as River's bases)."""
    return protocol in type(model).__mro__


#: the registered models that claim the linear contract
LINEAR = [n for n in NAMES if claims(build(n), LinearCtrModel)]


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_is_a_ctr_model(name: str) -> None:
    assert isinstance(build(name), CtrModel)


def test_matches_the_linear_protocol_only_if_it_claims_it(name: str) -> None:
    model = trained(name)
    assert isinstance(model, LinearCtrModel) == claims(model, LinearCtrModel)


def test_the_default_model_is_linear() -> None:
    assert "default" in LINEAR and "default+content" in LINEAR


@pytest.mark.parametrize("linear", LINEAR)
def test_linear_weights_predict_what_the_model_does(linear: str) -> None:
    """The closed form the serving view (:mod:`online_ctr.frozen`) relies on."""
    model = trained(linear, n=2000)
    assert isinstance(model, LinearCtrModel)
    weights = dict(model.weights)
    assert weights, "a trained model has weights"
    for x, _ in [*stream(50, 11), ({"unseen": 1.0}, False), ({}, False)]:
        logit = model.intercept + sum(weights.get(f, 0.0) * v for f, v in x.items())
        assert p1(model, x) == pytest.approx(sigmoid(logit), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("linear", LINEAR)
def test_linear_weights_can_be_set_and_forgotten(linear: str) -> None:
    """What the encoder duel (:mod:`online_ctr.promotion.duel`) does to image weights."""
    model = trained(linear, n=2000)
    assert isinstance(model, LinearCtrModel)
    model.set_weights({"f1": 0.25, "brand_new": -0.5, "f2": 0.0})
    weights = model.weights
    assert weights["f1"] == pytest.approx(0.25, rel=1e-12)
    assert weights["brand_new"] == pytest.approx(-0.5, rel=1e-12)
    assert "f2" not in weights
    kept = {f: w for f, w in weights.items() if not str(f).startswith("f")}
    assert model.forget(lambda f: str(f).startswith("f")) > 0
    assert dict(model.weights) == pytest.approx(kept)


def test_river_conventions(name: str) -> None:
    """River's own estimator checks: clone, repr, pickling, shuffled/emerging features..."""
    model = build(name)
    assert isinstance(model, base.Estimator)
    check_estimator(model)


def test_probabilities_in_unit_interval(name: str) -> None:
    model = build(name)
    for x, y in [*stream(300, 1), ({"f1": 1e6}, True), ({"f2": -1e6}, False)]:
        p = model.predict_proba_one(x)
        assert 0.0 <= p[True] <= 1.0
        assert p[True] + p[False] == pytest.approx(1.0, abs=1e-12)
        model.learn_one(x, y)


def test_input_not_mutated(name: str) -> None:
    model = build(name)
    for x, y in stream(50, 2):
        before = copy.deepcopy(x)
        model.predict_proba_one(x)
        model.learn_one(x, y, w=1.3)
        assert x == before


def test_predicting_does_not_change_the_model(name: str) -> None:
    model = trained(name)
    before = pickle.dumps(model)
    for x, _ in [*stream(20, 9), ({"unseen": 1.0}, False)]:
        model.predict_proba_one(x)
    assert pickle.dumps(model) == before


def test_survives_pickling(name: str) -> None:
    model = trained(name, seed=3)
    clone = pickle.loads(pickle.dumps(model))
    for x, _ in stream(20, 4):
        assert p1(clone, x) == p1(model, x)
    for x, y in stream(50, 5):  # and keeps learning identically
        clone.learn_one(x, y)
        model.learn_one(x, y)
    assert p1(clone, {"f1": 1.0}) == p1(model, {"f1": 1.0})


def test_new_and_missing_features_are_fine(name: str) -> None:
    model = build(name)
    model.learn_one({"a": 1.0, "b": 1.0}, True)
    assert 0 < p1(model, {"never_seen": 1.0}) < 1
    assert 0 < p1(model, {}) < 1
    model.learn_one({"c": 2.0}, False)
    model.learn_one({}, False)


def test_same_seed_same_result(name: str) -> None:
    a, b = build(name, seed=5), build(name, seed=5)
    for x, y in stream(200, 6):
        a.learn_one(x, y)
        b.learn_one(x, y)
    x = stream(1, 7)[0][0]
    assert p1(a, x) == p1(b, x)


def test_it_learns(name: str) -> None:
    """A model that learns nothing fails: f1 (CTR 0.3 vs 0.05) must score clearly higher."""
    model = trained(name, n=4000, seed=8)
    assert p1(model, {"f1": 1.0}) > 1.3 * p1(model, {"f2": 1.0})


def test_sample_weight_scales_learning(name: str) -> None:
    """``w`` is a real sample weight: a heavier positive moves the prediction further."""
    x = {"f1": 1.0, "g1": 1.0}
    light, heavy = build(name), build(name)
    for _ in range(5):
        light.learn_one(x, True, w=1.0)
        heavy.learn_one(x, True, w=3.0)
    assert p1(heavy, x) > p1(light, x)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")


def test_default_is_registered() -> None:
    assert "default" in MODELS and len(set(MODELS.values())) >= 2
