"""Progressive metrics against sklearn and a hand computation of NE."""

from __future__ import annotations

import json
import math
import random

import pytest
from sklearn.metrics import log_loss, roc_auc_score

from online_ctr.metrics import OTHER_SEGMENT, GroupMetrics, ProgressiveMetrics, entropy


def sample(n: int, seed: int) -> tuple[list[float], list[bool]]:
    rnd = random.Random(seed)
    ps = [rnd.uniform(0.001, 0.3) for _ in range(n)]
    return ps, [rnd.random() < p for p in ps]


def test_logloss_auc_and_ne_match_references() -> None:
    ps, ys = sample(3000, 0)
    m = ProgressiveMetrics()
    for p, y in zip(ps, ys, strict=True):
        m.update(p, y, "device=mobile,geo=DE")
    snap = m.snapshot()
    assert snap["count"] == 3000
    assert snap["logloss"] == pytest.approx(log_loss(ys, ps), rel=1e-9)
    assert snap["auc"] == pytest.approx(roc_auc_score(ys, ps), abs=1e-3)
    ctr = sum(ys) / len(ys)
    background = -(ctr * math.log(ctr) + (1 - ctr) * math.log(1 - ctr))
    assert snap["ne"] == pytest.approx(log_loss(ys, ps) / background, rel=1e-9)
    assert snap["calibration"] == pytest.approx(sum(ps) / len(ps) / ctr)
    assert snap["ctr"] == pytest.approx(ctr)


def test_auc_extremes_and_ties() -> None:
    g = GroupMetrics()
    for p, y in [(0.1, False), (0.2, False), (0.3, True), (0.4, True)]:
        g.update(p, y)
    assert g.auc() == 1.0
    worst = GroupMetrics()
    for p, y in [(0.1, True), (0.9, False)]:
        worst.update(p, y)
    assert worst.auc() == 0.0
    tied = GroupMetrics()
    for y in (True, False, False):
        tied.update(0.05, y)
    assert tied.auc() == 0.5


def test_segments_are_tracked_apart() -> None:
    m = ProgressiveMetrics()
    m.update(0.2, True, "a")
    m.update(0.2, False, "b")
    m.update(0.4, False, "b")
    snap = m.snapshot()
    assert snap["count"] == 3 and set(snap["segments"]) == {"a", "b"}
    assert snap["segments"]["a"]["ctr"] == 1.0 and snap["segments"]["a"]["ne"] is None
    assert snap["segments"]["b"]["count"] == 2
    assert snap["segments"]["b"]["logloss"] == pytest.approx((-math.log(0.8) - math.log(0.6)) / 2)


def test_snapshot_is_json_with_the_agreed_keys() -> None:
    m = ProgressiveMetrics()
    assert m.snapshot()["count"] == 0 and m.snapshot()["ne"] is None
    ps, ys = sample(100, 1)
    for p, y in zip(ps, ys, strict=True):
        m.update(p, y, "s")
    snap = json.loads(json.dumps(m.snapshot()))
    keys = {"count", "logloss", "ne", "auc", "calibration", "ctr"}
    assert set(snap) == keys | {"segments", "reliability"}
    assert set(snap["segments"]["s"]) == keys


def test_segment_count_is_capped() -> None:
    m = ProgressiveMetrics(max_segments=2)
    for key in ("a", "b", "c", "d", "a"):
        m.update(0.1, False, key)
    assert set(m.segments) == {"a", "b", OTHER_SEGMENT}
    assert m.segments[OTHER_SEGMENT].count == 2 and m.segments["a"].count == 2


def test_weights_count_like_repeats() -> None:
    once, twice = GroupMetrics(), GroupMetrics()
    once.update(0.3, True, w=2.0)
    once.update(0.1, False)
    for p, y in [(0.3, True), (0.3, True), (0.1, False)]:
        twice.update(p, y)
    assert once.snapshot() == pytest.approx(twice.snapshot())


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_rejects_non_probabilities(bad: float) -> None:
    with pytest.raises(ValueError, match="not a probability"):
        GroupMetrics().update(bad, True)


def test_entropy() -> None:
    assert entropy(0.5) == pytest.approx(math.log(2))
    assert entropy(0.0) == pytest.approx(0.0, abs=1e-5)
