"""The serving view predicts what the learner predicts, and is not moved by later learning."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from online_ctr import frozen
from online_ctr.features import FeatureSpec
from online_ctr.frozen import (
    SEGMENT_MEMO,
    FrozenLinear,
    batch_predictor,
    frozen_predictor,
    per_candidate_predictor,
)
from online_ctr.learner import Embedding, Learner
from online_ctr.models.registry import make_model
from schemas.events import Impression, Segment
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


@dataclass(frozen=True)
class Candidate:
    item_id: str
    variant: str
    title: str
    position: int


def trained(name: str, spec: FeatureSpec, seed: int = 0) -> tuple[Learner, random.Random]:
    """A learner on simulated traffic with random embeddings (some dimensions non-finite)."""
    sim = Simulator(SimConfig(seed=seed, n_items=12))
    learner = Learner(make_model(name, with_content=True), spec=spec)
    rng = random.Random(seed)
    for e in labelled_stream(sim, 1500):
        image = [rng.gauss(0, 1) for _ in range(10)]
        learner.predict_then_learn(e.labelled(), image, [rng.gauss(0, 1) for _ in range(3)])
    return learner, rng


def random_request(
    rng: random.Random, n: int
) -> tuple[Segment, float, list[Candidate], list[Embedding], list[Embedding]]:
    """A segment, a time and ``n`` candidates, some alike, some without embeddings."""
    segment = Segment.model_validate(
        {
            "device": rng.choice(["mobile", "desktop", "tv"]),
            "geo": rng.choice(["DE", "FR", "BR"]),
            **({"taste": rng.choice(["t0", "t1", "t2", "t9"])} if rng.random() < 0.9 else {}),
            **({"cohort": rng.choice(["a", "b"])} if rng.random() < 0.3 else {}),
        }
    )
    ts = rng.uniform(0, 4e9)
    words = ["red", "blue", "green", "shoe", "mug", "lamp", "bold", "x", "unseen"]
    candidates: list[Candidate] = []
    images: list[Embedding] = []
    titles: list[Embedding] = []
    for _ in range(n):
        candidates.append(
            Candidate(
                item_id=f"item-{rng.randrange(14):03d}",
                variant=f"v{rng.randrange(3)}",
                title=" ".join(rng.choice(words) for _ in range(rng.randrange(6))),
                position=rng.choice([0, 1, 2, 3, 6, 12, 40, 10_000]),
            )
        )
        dims = rng.choice([10, 10, 10, 4])  # another encoder's size now and then
        image = [rng.gauss(0, 2) for _ in range(dims)]
        if rng.random() < 0.1:
            image[rng.randrange(dims)] = rng.choice([float("nan"), float("inf")])
        images.append(None if rng.random() < 0.15 else image)
        titles.append(None if rng.random() < 0.2 else [rng.gauss(0, 1) for _ in range(3)])
    if n > 1:  # the same candidate twice must score the same
        candidates[-1], images[-1], titles[-1] = candidates[0], images[0], titles[0]
    return segment, ts, candidates, images, titles


def one_by_one(
    learner: Learner,
    segment: Segment,
    ts: float,
    candidates: list[Candidate],
    images: list[Embedding],
    titles: list[Embedding],
) -> list[float]:
    """``Learner.predict`` of each candidate as the impression it would become."""
    return [
        learner.predict(
            Impression(
                event_id="e", impression_id="i", ts=ts, item_id=c.item_id, image_id="img",
                variant=c.variant, title=c.title, position=c.position, segment=segment,
            ),
            image,
            title,
        )
        for c, image, title in zip(candidates, images, titles, strict=True)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(),
        FeatureSpec.from_setting("device=ids,taste"),
        FeatureSpec(None, None, None, 4, ("geo",)),
    ],
)
def test_batch_scores_equal_the_learner_one_by_one(spec: FeatureSpec) -> None:
    learner, rng = trained("ftrl", spec)
    predict_many = batch_predictor(learner)
    scores: set[float] = set()
    for _ in range(60):
        request = random_request(rng, rng.choice([1, 5, 100]))
        got = predict_many(*request)
        expected = one_by_one(learner, *request)
        assert got == pytest.approx(expected, rel=0, abs=1e-12)
        assert got[0] == got[-1]  # equal candidates score the same: a tie keeps request order
        scores.update(got)
    assert len(scores) > 1000  # a learned model, not a constant


def test_batch_scores_of_a_model_without_weights_are_its_own() -> None:
    learner, rng = trained("bayes", FeatureSpec())
    for _ in range(5):
        request = random_request(rng, 20)
        assert batch_predictor(learner)(*request) == one_by_one(learner, *request)
        assert per_candidate_predictor(learner)(*request) == one_by_one(learner, *request)
    with pytest.raises(TypeError, match="not a linear model"):
        FrozenLinear(learner)


def test_batch_view_remembers_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "CONTENT_MEMO", 150)
    learner, rng = trained("ftrl", FeatureSpec())
    view = FrozenLinear(learner)
    for _ in range(3):  # the second and third time from what it remembered
        request = random_request(random.Random(1), 30)
        expected = one_by_one(learner, *request)
        assert view.predict_many(*request) == pytest.approx(expected, abs=1e-12)
    for i in range(SEGMENT_MEMO + 10):
        view.predict_many(Segment(device=f"d{i}", geo="DE"), 0.0, [Candidate("a", "b", "", 0)],
                          [None], [None])  # fmt: skip
    assert len(view._segments) <= SEGMENT_MEMO
    for _ in range(20):  # candidates remembered: a request's worth past the bound at most
        request = random_request(rng, 100)
        expected = one_by_one(learner, *request)
        assert view.predict_many(*request) == pytest.approx(expected, abs=1e-12)
        assert sum(map(len, view._content.values())) == view._remembered <= 150 + 100
    # the view keeps its weights while the learner goes on
    request = random_request(rng, 50)
    before = view.predict_many(*request)
    for e in labelled_stream(Simulator(SimConfig(seed=9, n_items=12)), 300):
        learner.predict_then_learn(e.labelled(), [1.0] * 10, None)
    assert view.predict_many(*request) == before != pytest.approx(one_by_one(learner, *request))
