"""Per-audience quality: synthetic predictions that must and must not be flagged."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from online_ctr.metrics import GroupMetrics, score_bin
from online_ctr.segment_quality import (
    CALIBRATION_HIGH,
    CALIBRATION_LOW,
    MAX_FIELDS,
    NE,
    OTHER_VALUE,
    QualityRules,
    SegmentQuality,
    _WindowGroup,
    judge,
)
from schemas.settings import Settings

RULES = QualityRules(window=40_000, min_impressions=500, min_clicks=20)


def segment_of(doc: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    found = [s for s in doc["segments"] if (s["field"], s["value"]) == (field, value)]
    assert len(found) == 1, doc["segments"]
    segment: dict[str, Any] = found[0]
    return segment


def stream(
    quality: SegmentQuality,
    n: int,
    seed: int = 0,
    skew: dict[str, float] | None = None,
    blind: str | None = None,
) -> None:
    """``n`` examples over 3 geos and 2 devices; the model knows each true CTR.

    ``skew[geo]`` multiplies that geo's predictions (miscalibration);
    ``blind`` names a geo whose predictions carry no information about the
    example (the geo's mean CTR for every one of its examples).
    """
    rng = random.Random(seed)
    for _ in range(n):
        geo = rng.choice(["DE", "FR", "BR"])
        device = rng.choice(["mobile", "desktop"])
        true = rng.choice([0.01, 0.05, 0.2])
        y = rng.random() < true
        p = (sum([0.01, 0.05, 0.2]) / 3) if geo == blind else true
        p = min(p * (skew or {}).get(geo, 1.0), 1.0)
        quality.update(p, y, f"device={device},geo={geo}")


def test_a_calibrated_model_flags_nothing() -> None:
    q = SegmentQuality(RULES)
    stream(q, 30_000)
    doc = q.snapshot()
    assert {(s["field"], s["value"]) for s in doc["segments"]} == {
        ("device", "mobile"),
        ("device", "desktop"),
        ("geo", "DE"),
        ("geo", "FR"),
        ("geo", "BR"),
    }
    assert all(s["judged"] and s["flags"] == [] for s in doc["segments"]), doc["segments"]
    assert doc["overall"]["calibration"] == pytest.approx(1.0, abs=0.1)
    assert sum(s["share"] for s in doc["segments"] if s["field"] == "geo") == pytest.approx(1.0)
    json.dumps(doc)  # what the learner publishes


def test_an_overpredicted_segment_is_flagged_high_and_only_it() -> None:
    q = SegmentQuality(RULES)
    stream(q, 30_000, skew={"BR": 1.6})
    doc = q.snapshot()
    br = segment_of(doc, "geo", "BR")
    assert CALIBRATION_HIGH in br["flags"]
    assert br["calibration"] == pytest.approx(1.6, rel=0.15)
    assert segment_of(doc, "geo", "DE")["flags"] == []
    assert segment_of(doc, "geo", "FR")["flags"] == []


def test_an_underpredicted_segment_is_flagged_low() -> None:
    q = SegmentQuality(RULES)
    stream(q, 30_000, skew={"FR": 0.5})
    fr = segment_of(q.snapshot(), "geo", "FR")
    assert fr["flags"] == [CALIBRATION_LOW]


def test_a_segment_the_model_cannot_rank_is_flagged_for_ne_not_calibration() -> None:
    q = SegmentQuality(RULES)
    stream(q, 30_000, blind="DE")
    doc = q.snapshot()
    de = segment_of(doc, "geo", "DE")
    assert de["flags"] == [NE]
    assert de["ne"] > doc["overall"]["ne"] + RULES.ne_margin
    assert de["auc"] == pytest.approx(0.5, abs=0.01)  # one score for all: ties
    assert segment_of(doc, "geo", "FR")["flags"] == []


def test_too_little_data_is_never_flagged() -> None:
    few_impressions = QualityRules(window=40_000, min_impressions=20_000, min_clicks=1)
    q = SegmentQuality(few_impressions)
    stream(q, 30_000, skew={"BR": 3.0})
    br = segment_of(q.snapshot(), "geo", "BR")
    assert br["calibration"] > 2 and not br["judged"] and br["flags"] == []
    few_clicks = QualityRules(window=40_000, min_impressions=1, min_clicks=5_000)
    q = SegmentQuality(few_clicks)
    stream(q, 30_000, skew={"BR": 3.0})
    assert segment_of(q.snapshot(), "geo", "BR")["flags"] == []


def test_the_window_forgets_a_fixed_problem() -> None:
    q = SegmentQuality(QualityRules(window=9_000, min_impressions=500, min_clicks=20))
    stream(q, 9_000, seed=1, skew={"BR": 2.0})
    assert CALIBRATION_HIGH in segment_of(q.snapshot(), "geo", "BR")["flags"]
    stream(q, 9_000, seed=2)  # fixed: the bad examples have all left the window
    doc = q.snapshot()
    assert len(q) == doc["examples"] == 9_000
    assert segment_of(doc, "geo", "BR")["flags"] == []


def test_window_figures_equal_progressive_metrics_of_the_newest_examples() -> None:
    rng = random.Random(3)
    examples = [
        (rng.random() ** 3, rng.random() < 0.1, rng.choice(["a", "b"])) for _ in range(3_000)
    ]
    q = SegmentQuality(QualityRules(window=1_000, min_impressions=1, min_clicks=1))
    for p, y, taste in examples:
        q.update(p, y, {"device": "mobile", "geo": "DE", "taste": taste})
    expected = GroupMetrics()
    for p, y, taste in examples[-1_000:]:
        if taste == "a":
            expected.update(p, y)
    got = segment_of(q.snapshot(), "taste", "a")
    want = expected.snapshot()
    for key in ("count", "ne", "auc", "calibration", "ctr", "logloss"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key
    assert got["clicks"] == expected.positives


def test_a_window_group_is_group_metrics_and_leaves_nothing_behind() -> None:
    group, reference = _WindowGroup(), GroupMetrics()
    for p, y in [(0.3, True), (0.02, False), (0.3, False)]:
        group.add(p, y, -math.log(p if y else 1 - p), score_bin(p), 1.0)
        reference.update(p, y)
    assert group.snapshot() == reference.snapshot()
    for p, y in [(0.3, True), (0.02, False), (0.3, False)]:
        group.add(p, y, -math.log(p if y else 1 - p), score_bin(p), -1.0)
    assert group.count == group.positives == 0
    assert group.auc() is None and not group._pos_bins and not group._neg_bins


def test_values_per_field_are_capped_and_a_freed_slot_is_reused() -> None:
    q = SegmentQuality(QualityRules(window=10, max_values=3, min_impressions=1, min_clicks=1))
    for i in range(5):
        q.update(0.1, False, f"device=d,geo=g,user=u{i}")
    users = {s["value"] for s in q.snapshot()["segments"] if s["field"] == "user"}
    assert users == {"u0", "u1", "u2", OTHER_VALUE}
    for _ in range(20):  # u0..u4 leave, then the u9s pooled while the slots were taken
        q.update(0.1, False, "device=d,geo=g,user=u9")
    users = {s["value"] for s in q.snapshot()["segments"] if s["field"] == "user"}
    assert users == {"u9"}


def test_fields_are_capped() -> None:
    q = SegmentQuality(QualityRules(window=100, min_impressions=1, min_clicks=1))
    for i in range(MAX_FIELDS + 5):
        q.update(0.1, False, {"device": "d", "geo": "g", f"f{i:02d}": "x"})
    fields = {s["field"] for s in q.snapshot()["segments"]}
    assert len(fields) == MAX_FIELDS + 1 and OTHER_VALUE in fields


def test_a_segment_dict_and_its_key_count_alike() -> None:
    a, b = SegmentQuality(), SegmentQuality()
    a.update(0.2, True, {"geo": "DE", "device": "mobile"})
    b.update(0.2, True, "device=mobile,geo=DE")
    assert a.snapshot() == b.snapshot()


def test_a_prediction_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="not a probability"):
        SegmentQuality().update(float("nan"), True, "device=m,geo=DE")


def test_rules_come_from_the_settings_and_are_checked() -> None:
    settings = Settings(quality_window=1234, quality_ne_margin=0.1, quality_calibration_low=0.7)
    rules = QualityRules.from_settings(settings)
    assert (rules.window, rules.ne_margin, rules.calibration_low) == (1234, 0.1, 0.7)
    assert QualityRules() == QualityRules.from_settings(Settings())
    with pytest.raises(ValueError, match="must hold 1"):
        QualityRules(calibration_low=1.1)


def test_judge_needs_both_minimums() -> None:
    rules = QualityRules(min_impressions=100, min_clicks=10)
    bad = {"count": 100, "clicks": 10, "calibration": 0.5, "ne": 2.0}
    assert judge(bad, 1.0, rules) == [CALIBRATION_LOW, NE]
    assert judge({**bad, "clicks": 9}, 1.0, rules) == []
    assert judge({**bad, "count": 99}, 1.0, rules) == []
    assert judge({**bad, "ne": 1.05}, 1.0, rules) == [CALIBRATION_LOW]  # within the margin
    assert judge({**bad, "calibration": None, "ne": None}, 1.0, rules) == []
