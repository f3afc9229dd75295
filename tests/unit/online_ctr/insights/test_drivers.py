from __future__ import annotations

import json
import math

import numpy as np
import pytest

from online_ctr.insights import Effect, GroupCount, ImageAttributes, estimate_drivers
from online_ctr.insights.design import Contrast
from online_ctr.insights.regression import RawEffect
from tests.unit.online_ctr.insights.synthetic import world


def _x_sd(attributes: dict[str, ImageAttributes]) -> float:
    return float(np.std([a.numeric["x"] for a in attributes.values()]))


def _effect(effects: list[Effect], group: str, attribute: str) -> Effect:
    (found,) = [e for e in effects if e.group == group and e.attribute == attribute]
    return found


def test_recovers_known_effects_per_group_and_flags_only_real_ones() -> None:
    colour = {"colour=red": 0.3, "colour=blue": -0.1, "colour=green": -0.2}

    def shade(a: ImageAttributes) -> float:
        return sum(w for tag, w in colour.items() if tag in a.tags)

    counts, attrs = world(
        {
            "taste=a": lambda a, _: 0.2 * a.numeric["x"] + 0.25 * ("banner" in a.tags),
            "taste=b": lambda a, _: -0.2 * a.numeric["x"] + shade(a),
        }
    )
    drivers = estimate_drivers(counts, attrs)
    sd = _x_sd(attrs)
    a_x, b_x = _effect(drivers.effects, "taste=a", "x"), _effect(drivers.effects, "taste=b", "x")
    for effect, truth in ((a_x, 0.2 * sd), (b_x, -0.2 * sd)):
        assert abs(effect.log_odds - truth) < 4 * effect.se
        assert effect.significant and effect.lift_low < effect.lift < effect.lift_high
    banner = _effect(drivers.effects, "taste=a", "banner")
    assert abs(banner.log_odds - 0.25) < 4 * banner.se and banner.significant
    for tag, truth in colour.items():
        found = _effect(drivers.effects, "taste=b", tag)
        assert abs(found.log_odds - truth) < 4 * found.se, tag
    # no colour or banner preference in taste=a, no banner one in taste=b, z nowhere
    for group, attribute in [("taste=a", "z"), ("taste=b", "z"), ("taste=b", "banner")]:
        assert not _effect(drivers.effects, group, attribute).significant
    assert not any(
        e.significant
        for e in drivers.effects
        if e.attribute.startswith("colour=") and e.group == "taste=a"
    )


def test_correlated_attributes_do_not_take_each_others_credit() -> None:
    counts, attrs = world({"all": lambda a, _: 0.3 * a.numeric["x"]}, seed=1)
    drivers = estimate_drivers(counts, attrs)
    y = _effect(drivers.effects, "all", "y")
    assert abs(y.log_odds) < 4 * y.se
    assert _effect(drivers.effects, "all", "x").log_odds > 0.2


def test_within_items_is_not_fooled_by_items_whose_appeal_goes_with_a_look() -> None:
    # x has no effect at all, but items with high-x variants are better items
    counts, attrs = world({"all": lambda a, _: 0.0}, seed=2, quality_from_x=0.5)
    within = _effect(estimate_drivers(counts, attrs).effects, "all", "x")
    pooled = _effect(estimate_drivers(counts, attrs, within_items=False).effects, "all", "x")
    assert not within.significant
    assert pooled.significant and pooled.log_odds > 0.1


def test_false_discoveries_stay_rare_when_nothing_matters() -> None:
    counts, attrs = world({f"g={i}": lambda a, _: 0.0 for i in range(6)}, n_items=200, seed=3)
    drivers = estimate_drivers(counts, attrs)
    assert len(drivers.effects) == 6 * 7  # x, y, z, banner and three colours; flat cannot vary
    assert sum(e.significant for e in drivers.effects) <= 1
    assert all(e.q_value >= e.p_value for e in drivers.effects)


def test_constant_attributes_are_left_out_and_every_effect_says_what_it_stood_on() -> None:
    counts, attrs = world({"all": lambda a, _: 0.0}, n_items=50)
    drivers = estimate_drivers(counts, attrs)
    assert "flat" not in {e.attribute for e in drivers.effects}
    x = _effect(drivers.effects, "all", "x")
    assert (x.images, x.impressions) == (200, 200 * 3000) and x.sd is not None
    banner = _effect(drivers.effects, "all", "banner")
    assert 0 < banner.images_with < banner.images and banner.sd is None


def test_groups_without_enough_clicks_or_attributes_are_skipped_with_a_reason() -> None:
    counts, attrs = world({"all": lambda a, _: 0.0}, n_items=50)
    counts.append(GroupCount("rare", "item-0", "item-0-v0", 10, 1))
    counts.append(GroupCount("rare", "item-1", "item-1-v0", 10, 0))
    counts.append(GroupCount("dark", "item-x", "unknown-image", 100, 5))
    drivers = estimate_drivers(counts, attrs)
    fits = {g.group: g for g in drivers.groups}
    assert fits["rare"].skipped is not None and "clicks" in fits["rare"].skipped
    assert fits["dark"].skipped is not None and fits["dark"].unmeasured == 1
    assert {e.group for e in drivers.effects} == {"all"}


def test_q_must_be_a_rate() -> None:
    with pytest.raises(ValueError, match="q must be"):
        estimate_drivers([], {}, q=0.0)


def test_a_stricter_q_flags_no_more() -> None:
    counts, attrs = world({"all": lambda a, _: 0.05 * a.numeric["x"]}, n_items=100, seed=4)
    loose = estimate_drivers(counts, attrs, q=0.2)
    strict = estimate_drivers(counts, attrs, q=0.01)
    assert sum(e.significant for e in strict.effects) <= sum(e.significant for e in loose.effects)
    assert [e.q_value for e in loose.effects] == [e.q_value for e in strict.effects]


def test_for_group_orders_strongest_first() -> None:
    counts, attrs = world({"all": lambda a, _: 0.4 * a.numeric["z"]}, n_items=100)
    ranked = estimate_drivers(counts, attrs).for_group("all")
    assert ranked[0].attribute == "z"
    assert [abs(e.log_odds) for e in ranked] == sorted(
        (abs(e.log_odds) for e in ranked), reverse=True
    )


@pytest.mark.parametrize("log_odds", [1000.0, -1000.0, 35.0])
def test_a_separated_fit_reports_finite_lifts(log_odds: float) -> None:
    """A separated fit's huge log-odds and infinite error still give finite JSON.

    Found by the live page's first run: ``expm1`` of a separated fit's
    log-odds raised ``OverflowError`` and ``/explain`` answered 500.
    """
    contrast = Contrast("colour=red", "tag", None, 3, np.zeros(2))
    effect = RawEffect(contrast, log_odds, math.inf, 1.0)
    values = (effect.lift, *effect.lift_interval)
    assert all(math.isfinite(v) for v in values)
    json.dumps(values, allow_nan=False)
    assert effect.lift_interval[0] <= effect.lift <= effect.lift_interval[1]
