"""The contract every registered online model must keep (River style)."""

from __future__ import annotations

import copy
import pickle
import random

import pytest

from online_ctr.models import MODELS, make_model


def stream(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x = {f"f{rnd.randrange(20)}": 1.0, "pos_decay": rnd.random(), f"g{rnd.randrange(5)}": 1.0}
        y = rnd.random() < (0.3 if "f1" in x else 0.05)
        out.append((x, y))
    return out


@pytest.fixture(params=sorted(MODELS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_probabilities_in_unit_interval(name: str) -> None:
    model = make_model(name)
    for x, y in stream(300, 1):
        p = model.predict_proba_one(x)
        assert 0.0 <= p[True] <= 1.0 and abs(p[True] + p[False] - 1.0) < 1e-9
        model.learn_one(x, y)


def test_input_not_mutated(name: str) -> None:
    model = make_model(name)
    for x, y in stream(50, 2):
        before = copy.deepcopy(x)
        model.predict_proba_one(x)
        model.learn_one(x, y, w=1.3)
        assert x == before


def test_survives_pickling(name: str) -> None:
    model = make_model(name)
    for x, y in stream(200, 3):
        model.learn_one(x, y)
    clone = pickle.loads(pickle.dumps(model))
    for x, _ in stream(20, 4):
        assert clone.predict_proba_one(x) == model.predict_proba_one(x)


def test_new_and_missing_features_are_fine(name: str) -> None:
    model = make_model(name)
    model.learn_one({"a": 1.0, "b": 1.0}, True)
    assert 0 < model.predict_proba_one({"never_seen": 1.0})[True] < 1
    assert 0 < model.predict_proba_one({})[True] < 1
    model.learn_one({"c": 2.0}, False)


def test_same_seed_same_result(name: str) -> None:
    a, b = make_model(name, seed=5), make_model(name, seed=5)
    for x, y in stream(200, 6):
        a.learn_one(x, y)
        b.learn_one(x, y)
    x = stream(1, 7)[0][0]
    assert a.predict_proba_one(x) == b.predict_proba_one(x)


def test_it_learns(name: str) -> None:
    """A model that learns nothing fails: f1 (CTR 0.3 vs 0.05) must score clearly higher."""
    model = make_model(name)
    for x, y in stream(4000, 8):
        model.learn_one(x, y)
    f1 = model.predict_proba_one({"f1": 1.0})[True]
    f2 = model.predict_proba_one({"f2": 1.0})[True]
    assert f1 > 1.3 * f2


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope")
