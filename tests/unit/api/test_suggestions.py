"""Suggestions for an item: wording and choice from A/B verdicts and driver effects."""

from __future__ import annotations

from api.suggestions import ab_suggestions, audience, driver_suggestions
from online_ctr.ab import Arm, DecisionRule
from online_ctr.ab.decision import decide
from online_ctr.insights import Effect, ImageAttributes

RULE = DecisionRule()


def _effect(group: str, attribute: str, kind: str, lift: float, significant: bool = True) -> Effect:
    import math

    return Effect(
        group=group, attribute=attribute, kind=kind, sd=0.2 if kind == "numeric" else None,  # type: ignore[arg-type]
        log_odds=math.log1p(lift), se=0.05, lift=lift, lift_low=lift / 2, lift_high=lift * 1.5,
        p_value=0.001, q_value=0.01 if significant else 0.5, significant=significant,
        impressions=1000, clicks=50, images=40, images_with=20,
    )  # fmt: skip


def test_a_groups_winner_becomes_show_variant_with_its_uplift_and_interval() -> None:
    control = [Arm("a", 5000, 150), Arm("b", 5000, 150)]
    better = [Arm("a", 5000, 150), Arm("b", 5000, 260)]
    verdicts = [
        decide(control, RULE, segment="all", control="a"),
        decide(better, RULE, segment="taste=t2", control="a"),
    ]
    assert verdicts[1].decision == "winner"
    (only,) = ab_suggestions(verdicts)
    assert only.segment == "taste=t2" and only.variant == "b" and only.source == "ab"
    assert only.text.startswith("show variant b to taste group t2: +7")
    assert "over control 'a'" in only.text
    assert only.lift_low is not None and only.lift_high is not None
    assert 0 < only.lift_low < only.lift is not None and only.lift < only.lift_high  # type: ignore[operator]


def test_a_winner_everyone_already_gets_is_not_repeated_per_group() -> None:
    better = [Arm("a", 5000, 150), Arm("b", 5000, 260)]
    verdicts = [
        decide(better, RULE, segment="all", control="a"),
        decide(better, RULE, segment="device=mobile", control="a"),
    ]
    assert [s.segment for s in ab_suggestions(verdicts)] == ["all"]


def test_drivers_name_the_variant_that_has_what_wins() -> None:
    variants = {
        "a": ImageAttributes("ia", {"brightness": 0.3}, frozenset()),
        "b": ImageAttributes("ib", {"brightness": 0.8}, frozenset({"banner"})),
    }
    effects = [
        _effect("device=mobile", "brightness", "numeric", 0.2),
        _effect("device=desktop", "banner", "tag", -0.3),
        _effect("all", "clutter", "numeric", 0.5),  # the variants do not differ on it
        _effect("geo=DE", "brightness", "numeric", 0.9, significant=False),
    ]
    out = driver_suggestions(effects, variants)
    assert [s.variant for s in out] == ["a", "b"]  # strongest first: banner, then brightness
    assert out[0].text.startswith("variants without banner win with device group desktop")
    assert "here variant(s) a" in out[0].text
    assert out[1].text.startswith("brighter variants win with device group mobile (brightness +20%")
    assert out[1].text.endswith("here variant b is the brightest (0.80)")


def test_audience_names() -> None:
    assert audience("all") == "every audience" and audience("geo=BR") == "geo group BR"
