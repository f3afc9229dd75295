"""FTRL-Proximal's per-feature L1 overrides: variant ids as residuals.

The model-wide contract (probabilities, pickling, ...) is in
``test_model_contract``; this is the one behaviour of its own.
"""

from __future__ import annotations

import pickle

import pytest

from online_ctr.features import VARIANT_ID
from online_ctr.models.ftrl import FTRLProximalClassifier
from online_ctr.models.registry import CONTENT_VARIANT_ID_L1, make_model

VAR = f"{VARIANT_ID}42"
CROSSED = f"seg.taste=t1&{VARIANT_ID}42"


def _learn(model: FTRLProximalClassifier, clicks: int, views: int) -> None:
    """``views`` impressions of one variant shown next to an image feature, ``clicks`` clicked."""
    for i in range(views):
        model.learn_one({VAR: 1.0, CROSSED: 1.0, "img_0": 1.0}, i < clicks)


def test_an_overridden_feature_needs_more_evidence_before_it_moves() -> None:
    plain = FTRLProximalClassifier()
    residual = FTRLProximalClassifier(l1_overrides={VARIANT_ID: 5.0})
    for model in (plain, residual):
        _learn(model, clicks=3, views=40)  # a few lucky clicks
    assert plain.weights.get(VAR, 0.0) > 0 and plain.weights.get(CROSSED, 0.0) > 0
    assert VAR not in residual.weights and CROSSED not in residual.weights
    assert residual.weights["img_0"] != 0.0  # other features learn as before

    for model in (plain, residual):
        _learn(model, clicks=150, views=400)  # overwhelming evidence gets through
    assert residual.weights[VAR] > 0 and residual.weights[CROSSED] > 0


def test_overrides_survive_pickling_and_old_pickles_load() -> None:
    model = FTRLProximalClassifier(l1_overrides={VARIANT_ID: 5.0})
    _learn(model, clicks=3, views=40)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.l1_overrides == {VARIANT_ID: 5.0} and clone.weights == model.weights
    # a checkpoint from before the overrides existed has neither attribute
    state = dict(model.__dict__)
    del state["l1_overrides"], state["_l1_of"]
    old = FTRLProximalClassifier.__new__(FTRLProximalClassifier)
    old.__setstate__(state)
    assert old.l1_overrides == {} and old.predict_proba_one({"img_0": 1.0})[True] > 0


def test_make_model_turns_it_on_only_with_content() -> None:
    plain, content = make_model(), make_model(with_content=True)
    assert isinstance(plain, FTRLProximalClassifier) and isinstance(content, FTRLProximalClassifier)
    assert plain.l1_overrides == {}
    assert content.l1_overrides == {VARIANT_ID: CONTENT_VARIANT_ID_L1}
    with pytest.raises(ValueError, match="l1_overrides"):
        FTRLProximalClassifier(l1_overrides={VARIANT_ID: -1.0})


def test_set_weights_sets_exactly_and_a_fresh_weight_moves_like_a_new_feature() -> None:
    """Carried weights (a challenger's image weights) start where they are put, then learn."""
    settled, fresh, kept = (FTRLProximalClassifier(l1_overrides={VARIANT_ID: 5.0}) for _ in "abc")
    for model in (settled, fresh, kept):
        _learn(model, clicks=30, views=300)  # img_0 has a long history: a small step size
    fresh.set_weights({"img_0": 0.4, VAR: -0.7, "img_9": 1.5})
    kept.set_weights({"img_0": 0.4, VAR: -0.7, "img_9": 1.5}, fresh=False)
    for model in (fresh, kept):
        assert model.weights["img_0"] == pytest.approx(0.4)
        assert model.weights[VAR] == pytest.approx(-0.7)  # its own L1 of 5 is respected
        assert model.weights["img_9"] == pytest.approx(1.5)
    for model in (fresh, kept):
        for _ in range(20):  # evidence that img_0 lowers clicks
            model.learn_one({"img_0": 1.0}, False)
    moved_fresh = 0.4 - fresh.weights["img_0"]
    moved_kept = 0.4 - kept.weights["img_0"]
    assert moved_fresh > 3 * moved_kept > 0
    with pytest.raises(ValueError, match="not finite"):
        fresh.set_weights({"img_1": float("nan")})
