"""Champion against challenger on one stream: the better encoder wins, nothing is lost."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from online_ctr.features import is_image_feature
from online_ctr.learner import Learner
from online_ctr.models.ftrl import FTRLProximalClassifier, sigmoid
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import EncoderDuel, _restart_image_steps, serving_learner
from schemas import Impression, LabelledImpression

T0 = 1_767_225_600.0
WINDOW = 10.0


def ftrl(arm: Learner | None) -> FTRLProximalClassifier:
    """The model of a duel's arm, which these tests build as FTRL."""
    assert arm is not None and isinstance(arm.model, FTRLProximalClassifier)
    return arm.model


def example(i: int, rng: np.random.Generator) -> tuple[LabelledImpression, list[float]]:
    """An impression whose click depends on its image (a hidden 2-d look) and taste."""
    taste = "t1" if i % 2 else "t2"
    look = rng.normal(size=2)
    liking = look[0] if taste == "t1" else -look[0]
    clicked = bool(rng.random() < sigmoid(-2.0 + 1.5 * liking))
    imp = Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=T0 + i,
        item_id=f"sku-{i % 7}",
        image_id=f"img-{i}",
        variant="v1",
        title="red shoe",
        position=0,
        segment={"device": "mobile", "geo": "DE", "taste": taste},
    )
    labelled = LabelledImpression.from_impression(
        imp, clicked=clicked, click_delay_s=None, late=False, labelled_at=T0 + i + 1
    )
    return labelled, [float(v) for v in look]


def content(image: list[float]) -> SimpleNamespace:
    """An example's embeddings as the embedder gives them: an image, no title."""
    return SimpleNamespace(image=image, title=None)


def run(
    duel: EncoderDuel, n: int, champion_sees_look: bool, challenger_sees_look: bool, seed: int = 1
) -> None:
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 100)
    for i in range(n):
        labelled, look = example(i, rng)
        blind = [float(v) for v in noise.normal(size=2)]
        duel.submit(
            labelled,
            "labelled:0",
            content(look if champion_sees_look else blind),
            content(look if challenger_sees_look else blind),
        )
    duel.advance("labelled:0", T0 + n + 2 * WINDOW)


def learner() -> Learner:
    return Learner(make_model(with_content=True), window_s=WINDOW)


def test_an_encoder_that_sees_what_drives_clicks_is_promoted() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 1000, champion_sees_look=False, challenger_sees_look=False)
    champion = duel.champion
    duel.challenge("3", min_examples=200)
    run(duel, 30_000, champion_sees_look=False, challenger_sees_look=True, seed=2)
    assert duel.champion_version == "3" and duel.champion is not champion
    assert duel.challenger is None and duel.comparison is None
    decision = duel.decisions[-1]
    assert decision["decision"] == "promote" and decision["lo"] > 0 and decision["n"] < 30_000
    assert serving_learner(duel) is duel.champion


def test_a_corrupted_encoder_is_retired_and_never_serves() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 1000, champion_sees_look=True, challenger_sees_look=True)
    champion = duel.champion
    duel.challenge("3", min_examples=200)
    run(duel, 30_000, champion_sees_look=True, challenger_sees_look=False, seed=2)
    assert duel.champion is champion and duel.champion_version == "2"
    assert [d["decision"] for d in duel.decisions] == ["retire"]
    assert duel.decisions[-1]["hi"] <= 0


def test_an_identical_encoder_is_not_promoted() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 500, champion_sees_look=True, challenger_sees_look=True)
    duel.challenge("2b", min_examples=200, max_examples=5_000)
    run(duel, 6_000, champion_sees_look=True, challenger_sees_look=True, seed=2)
    assert duel.champion_version == "2"
    assert [d["decision"] for d in duel.decisions] == ["retire"]


def test_both_arms_learn_every_example_once_and_the_count_never_depends_on_a_duel() -> None:
    plain = learner()
    rng = np.random.default_rng(5)
    stream = [example(i, rng) for i in range(3000)]
    duel = EncoderDuel(learner(), version="2")
    for i, (labelled, look) in enumerate(stream):
        if i == 1500:  # mid-stream: the champion holds a window of examples
            assert duel.champion.buffered > 0
            scored_before = duel.champion.metrics.snapshot()["count"]
            duel.challenge("3", min_examples=10**6, max_examples=10**7, calibration=0)
        plain.submit(labelled, "p0", look)
        duel.submit(labelled, "p0", content(look), content(look))
    plain.advance("p0", T0 + 4000)
    duel.advance("p0", T0 + 4000)
    assert duel.challenger is not None and duel.comparison is not None
    assert plain.learned == duel.champion.learned == duel.challenger.learned == 3000
    # every example scored after the start, buffered ones included, was paired
    assert duel.comparison.n == duel.challenger.metrics.snapshot()["count"] - scored_before


def test_the_challenger_starts_from_the_champion_without_its_image_weights() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 3000, champion_sees_look=True, challenger_sees_look=True)
    duel.challenge("3", calibration=0)
    assert duel.challenger is not None
    champion_w, challenger_w = ftrl(duel.champion).weights, ftrl(duel.challenger).weights
    assert any(is_image_feature(f) for f in champion_w)
    assert not any(is_image_feature(f) for f in challenger_w)
    assert {f: w for f, w in champion_w.items() if not is_image_feature(f)} == challenger_w


def test_a_comparison_survives_a_restart() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 500, champion_sees_look=False, challenger_sees_look=False)
    duel.challenge("3", min_examples=10**6, max_examples=10**7)
    run(duel, 2000, champion_sees_look=False, challenger_sees_look=True, seed=2)
    restored = pickle.loads(pickle.dumps(duel))
    assert restored.comparison is not None and duel.comparison is not None
    assert restored.comparison.n == duel.comparison.n > 0
    assert restored.status()["challenger"] == "3"
    assert restored.comparison.interval == pytest.approx(duel.comparison.interval)


def test_serving_learner_reads_old_snapshots_and_refuses_others() -> None:
    bare = learner()
    assert serving_learner(bare) is bare
    with pytest.raises(TypeError):
        serving_learner({"not": "a model"})


def test_a_map_of_the_champions_embedding_starts_with_the_champions_image_weights() -> None:
    """Same images, the same or a rotated embedding: the challenger knows what the champion knows.

    After the calibration examples the challenger's image weights are the
    champion's carried through the fitted map (at a new feature's step size,
    so they can still move), and the champion's buffered examples carry the
    new embedding, so both arms predict later examples nearly alike. With the
    weights forgotten instead (``calibration=0``) the same version starts
    behind and pays for it in the comparison: the learning tax.
    """
    turn = np.array([[0.6, -0.8], [0.8, 0.6]])
    spreads = {}
    for name, calibration, rotate in (
        ("identical", 1000, False),
        ("rotated", 1000, True),
        ("forgotten", 0, False),
    ):
        duel = EncoderDuel(learner(), version="2")
        run(duel, 3000, champion_sees_look=True, challenger_sees_look=True)
        duel.challenge("3", min_examples=10**6, max_examples=10**7, calibration=calibration)
        rng = np.random.default_rng(2)
        for i in range(3000, 9000):
            labelled, look = example(i, rng)
            mine = (turn @ np.array(look)).tolist() if rotate else look
            duel.submit(labelled, "labelled:0", content(look), content(mine))
        assert duel.comparison is not None and duel.challenger is not None
        assert duel.comparison.n > 4000
        if calibration:
            champion_w = {
                f: w for f, w in ftrl(duel.champion).weights.items() if str(f)[:4] == "img_"
            }
            assert champion_w, "the champion learned image weights"
        spreads[name] = (abs(duel.comparison.mean or 0.0), duel.comparison.std or 0.0)
    tax, spread = spreads["identical"]
    assert tax < 1e-6 and spread < 1e-5, spreads  # the same model on the same data
    tax, spread = spreads["rotated"]
    assert tax < 0.02 * spreads["forgotten"][0], spreads  # measured: 0.004 of it
    assert spread < 0.1 * spreads["forgotten"][1], spreads  # measured: 0.04 of it


def test_the_champion_learns_its_image_weights_at_the_challengers_pace_unchanged() -> None:
    """Both arms restart their image step sizes, and the champion predicts as before."""
    duel = EncoderDuel(learner(), version="2")
    run(duel, 3000, champion_sees_look=True, challenger_sees_look=True)
    model = ftrl(duel.champion)
    before = dict(model.weights)
    image = [f for f in model._n if is_image_feature(f)]
    assert image and all(model._n[f] > 0 for f in image)
    _restart_image_steps(duel.champion)
    assert model.weights == pytest.approx(before, rel=1e-9)
    assert all(model._n.get(f, 0.0) == 0.0 for f in image)
    assert all(model._n[f] > 0 for f in model._n if not is_image_feature(f))


def test_a_duel_checkpointed_while_calibrating_resumes_calibrating() -> None:
    duel = EncoderDuel(learner(), version="2")
    run(duel, 500, champion_sees_look=True, challenger_sees_look=True)
    duel.challenge("3", calibration=1000)
    run(duel, 400, champion_sees_look=True, challenger_sees_look=True, seed=2)
    assert duel.calibrating and duel.status()["calibrating"] is True
    restored = pickle.loads(pickle.dumps(duel))
    assert restored.calibrating and restored.pairs is not None and restored.pairs.n == 400
    run(restored, 700, champion_sees_look=True, challenger_sees_look=True, seed=3)
    assert not restored.calibrating and restored.challenger is not None
