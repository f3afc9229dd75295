"""The cross-fitted cell reward model, self-normalised DR and DR with shrinkage."""

from __future__ import annotations

import numpy as np
import pytest

from online_ctr.ope import (
    CellModel,
    LoggedImpression,
    Terms,
    UniformPolicy,
    VariantPolicy,
    cross_fitted_rewards,
    doubly_robust,
    dr_shrinkage,
    evaluate,
    ips,
    prepare,
    self_normalised_dr,
    shrinkage_terms,
)
from online_ctr.ope import cell_model as cell_module


def unit(segment: str, shown: str, reward: float, item: str = "i") -> LoggedImpression:
    return LoggedImpression(segment, item, ("a", "b"), shown, 0.5, reward, (0.0, 0.0))


def test_empty_cells_fall_back_to_the_parent_and_the_base_rate() -> None:
    units = [unit("taste=x", "a", 1.0), unit("taste=x", "a", 0.0)]
    model = CellModel(units)
    assert model.base == pytest.approx(1.5 / 3.0)
    # b was never shown: the base rate; a in an unseen segment: the (item, variant) rate
    assert model.predict("taste=x", "i", "b") == model.base
    assert model.predict("taste=y", "i", "a") == model.rates[0][("i", "a")]
    assert model.predict("taste=x", "other", "a") == model.base


def test_a_cell_with_many_impressions_keeps_its_own_rate() -> None:
    # taste x clicks a 40% of the time, taste y 0%: 500 impressions each, far apart
    units = [unit("taste=x", "a", float(k % 5 < 2)) for k in range(500)]
    units += [unit("taste=y", "a", 0.0) for _ in range(500)]
    model = CellModel(units)
    assert model.predict("taste=x", "i", "a") == pytest.approx(0.4, abs=0.01)
    assert model.predict("taste=y", "i", "a") == pytest.approx(0.0, abs=0.01)


def test_cells_with_the_same_rate_shrink_to_their_parent() -> None:
    # two segments with one true rate: the moment estimate sees no excess spread
    rng = np.random.default_rng(1)
    units = [unit(f"taste={t}", "a", float(rng.random() < 0.2)) for t in "xy" for _ in range(300)]
    model = CellModel(units)
    parent = model.rates[0][("i", "a")]
    for t in "xy":
        assert model.predict(f"taste={t}", "i", "a") == pytest.approx(parent, abs=0.01)


def test_each_fold_is_predicted_by_a_model_that_never_saw_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    units = [unit(f"taste={'xy'[k % 2]}", "ab"[k % 3 % 2], float(k % 7 == 0)) for k in range(60)]
    fitted_on: list[set[int]] = []
    real = cell_module.CellModel

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, train: list[LoggedImpression], group: tuple[str, ...]) -> None:
            fitted_on.append({id(u) for u in train})
            super().__init__(train, group)

    monkeypatch.setattr(cell_module, "CellModel", Spy)
    prior = [unit("taste=x", "a", 1.0)]
    q = cross_fitted_rewards(units, folds=3, prior_units=prior, seed=4)
    assert len(fitted_on) == 3 and len(q) == len(units)
    assert all(len(row) == 2 for row in q)
    predicted_by: list[set[int]] = []
    for seen in fitted_on:
        assert id(prior[0]) in seen  # the prior logs join every fold
        predicted_by.append({i for i, u in enumerate(units) if id(u) not in seen})
    # every unit is predicted by exactly one model, and that model never saw it
    covered = sorted(i for group in predicted_by for i in group)
    assert covered == list(range(len(units)))


def test_a_unit_never_predicts_its_own_reward() -> None:
    # every unit its own item, clicked: a model that saw it would say ~1 for the shown variant;
    # a cross-fitted one only knows the base rate of the other fold
    units = [unit("taste=x", "a", 1.0, item=f"i{k}") for k in range(50)]
    q = cross_fitted_rewards(units, folds=2, seed=0)
    for row in q:
        assert row[0] == row[1]  # a and b alike: nothing of the item itself was seen
        assert row[0] == pytest.approx(CellModel(units[:25]).base, abs=0.05)


def test_cross_fitting_needs_two_folds() -> None:
    with pytest.raises(ValueError, match="2 folds"):
        cross_fitted_rewards([unit("taste=x", "a", 1.0)], folds=1)


def test_rewards_model_replaces_q_but_not_the_policy_input() -> None:
    units = [unit("s", "a", 1.0), unit("s", "b", 0.0)]
    q = [(0.9, 0.1), (0.8, 0.2)]
    terms = prepare(units, VariantPolicy("a"), min_impressions=2, rewards_model=q)
    assert list(terms.q_shown) == [0.9, 0.2]
    assert list(terms.q_target) == [0.9, 0.8]
    with pytest.raises(ValueError, match="rows"):
        prepare(units, UniformPolicy(), min_impressions=2, rewards_model=q[:1])


def _terms(w: list[float], r: list[float], qs: list[float], qt: list[float]) -> Terms:
    return Terms(np.array(w), np.array(r), np.array(qs), np.array(qt))


def test_sndr_hand_computed() -> None:
    # corrections w (r - q): 2 * 0.5, 0; the weight mass 3 over 2 units
    t = _terms([2.0, 1.0, 0.0], [1.0, 0.5, 0.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    est = self_normalised_dr(t)
    assert est.value == pytest.approx(0.5 + 1.0 / 3.0)
    assert doubly_robust(t).value == pytest.approx(0.5 + 1.0 / 3.0)  # mean(w) = 1 here
    assert est.ci_low <= est.value <= est.ci_high


def test_shrinkage_zero_is_the_reward_model_and_infinity_is_dr() -> None:
    t = _terms([4.0, 0.0, 4.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.3, 0.2, 0.3, 0.2], [0.3] * 4)
    dm, _ = shrinkage_terms(t, 0.0)
    assert list(dm) == pytest.approx([0.3] * 4)
    dr, bias = shrinkage_terms(t, np.inf)
    assert float(np.mean(dr)) == pytest.approx(doubly_robust(t).value)
    assert bias == 0.0
    # l = w^2 halves the weight: w_l = 2 where w = 4
    half, _ = shrinkage_terms(t, 16.0)
    assert list(half) == pytest.approx([0.3 + 2 * 0.7, 0.3, 0.3 - 2 * 0.3, 0.3])


def _world(seed: int, n: int, q_noise: float) -> tuple[list[LoggedImpression], float]:
    """Four variants logged uniformly with rare clicks; the target always shows ``c``."""
    rng = np.random.default_rng(seed)
    ctr = np.array([0.02, 0.03, 0.05, 0.04])
    q = tuple(float(x) for x in np.clip(ctr + rng.normal(0, q_noise, 4), 0.0, 1.0))
    units = []
    for _ in range(n):
        k = int(rng.integers(4))
        clicked = float(rng.random() < ctr[k])
        units.append(LoggedImpression("s", "i", tuple("abcd"), "abcd"[k], 0.25, clicked, q))
    return units, float(ctr[2])


def test_dros_beats_ips_with_a_good_reward_model_and_its_interval_covers() -> None:
    runs, covered = 60, 0
    errors: dict[str, list[float]] = {"ips": [], "dr": [], "dros": []}
    for seed in range(runs):
        units, truth = _world(seed, 2000, 0.002)
        terms = prepare(units, VariantPolicy("c"), min_impressions=100)
        for name, f in (("ips", ips), ("dr", doubly_robust), ("dros", dr_shrinkage)):
            errors[name].append(abs(f(terms).value - truth))
        est = dr_shrinkage(terms)
        covered += est.ci_low <= truth <= est.ci_high
    # the click's own noise dominates at a CTR of a few percent: DR barely gains, DRos does
    assert np.mean(errors["dros"]) < 0.95 * np.mean(errors["ips"])
    assert np.mean(errors["dros"]) < np.mean(errors["dr"])
    assert covered / runs >= 0.9


def test_dros_stays_honest_with_a_wrong_reward_model() -> None:
    # q off by +0.03 on every variant: shrinking towards it is biased; the bound must see it
    runs, covered = 60, 0
    errors: dict[str, list[float]] = {"ips": [], "dros": []}
    for seed in range(runs):
        units, truth = _world(seed, 2000, 0.0)
        units = [
            LoggedImpression(
                u.segment,
                u.item_id,
                u.candidates,
                u.shown,
                u.propensity,
                u.reward,
                tuple(p + 0.03 for p in u.predicted),
            )
            for u in units
        ]
        terms = prepare(units, VariantPolicy("c"), min_impressions=100)
        est = dr_shrinkage(terms)
        covered += est.ci_low <= truth <= est.ci_high
        errors["dros"].append(abs(est.value - truth))
        errors["ips"].append(abs(ips(terms).value - truth))
    assert covered / runs >= 0.9
    assert np.mean(errors["dros"]) < 1.2 * np.mean(errors["ips"])


def test_evaluate_reports_every_estimator_with_a_rewards_model() -> None:
    units, _ = _world(0, 600, 0.0)
    q = cross_fitted_rewards(units)
    report = evaluate(units, VariantPolicy("c"), min_impressions=100, rewards_model=q)
    assert set(report.estimates) == {"ips", "snips", "dr", "sndr", "dros"}
    assert report.as_dict()["estimators"]["dros"]["n"] == 600
