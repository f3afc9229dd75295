"""The serving view predicts what the learner predicts, and is not moved by later learning."""

from __future__ import annotations

import random

import pytest

from online_ctr.frozen import frozen_predictor
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from simulator import SimConfig, Simulator
from simulator.labelled import labelled_stream


@pytest.mark.parametrize("name", ["ftrl", "river-ftrl", "bayes"])
def test_frozen_view_equals_the_learner(name: str) -> None:
    sim = Simulator(SimConfig(seed=3, n_items=8))
    learner = Learner(make_model(name, with_content=True))
    rng = random.Random(0)
    vectors: dict[str, tuple[float, ...]] = {}

    def emb(key: str) -> tuple[float, ...]:
        return vectors.setdefault(key, tuple(rng.gauss(0, 1) for _ in range(4)))

    stream = labelled_stream(sim, 1500)
    for e in stream[:1200]:
        learner.predict_then_learn(
            e.labelled(), emb(e.impression.image_id), emb(e.impression.title)
        )
    predict = frozen_predictor(learner)
    held_out = stream[1200:]
    features = [
        learner.features(e.impression, emb(e.impression.image_id), emb(e.impression.title))
        for e in held_out
    ]
    expected = [learner.predict_features(x) for x in features]
    assert [predict(x) for x in features] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert len(set(expected)) > 50  # a learned model, not a constant

    if name == "ftrl":  # the view keeps its weights while the learner goes on
        for e in held_out:
            learner.predict_then_learn(e.labelled(), emb(e.impression.image_id), None)
        assert [predict(x) for x in features] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert [learner.predict_features(x) for x in features] != pytest.approx(expected)
