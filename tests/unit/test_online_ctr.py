"""Features, metrics, the learner's reorder buffer, FNW weights and checkpoints."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from sklearn.metrics import log_loss, roc_auc_score

from online_ctr.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from online_ctr.features import bucket, featurize
from online_ctr.learner import Learner, fnw_weight
from online_ctr.metrics import ProgressiveMetrics, entropy
from online_ctr.models import make_model
from schemas import Impression, LabelledImpression


def imp(
    i: int, ts: float = 1_767_225_600.0, taste: str = "t1", title: str = "red shoe"
) -> Impression:
    return Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=ts,
        item_id="sku-1",
        image_id="img",
        variant="v2",
        title=title,
        position=4,
        segment={"device": "mobile", "geo": "DE", "taste": taste},
    )


def test_features_are_sparse_stable_and_crossed() -> None:
    x = featurize(imp(1))
    assert x["seg.device=mobile"] == 1.0 and x["seg.taste=t1"] == 1.0
    assert x["w=red"] == 1.0 and x["seg.taste=t1&w=shoe"] == 1.0
    assert x["pos=3"] == 1.0 and x["hour=0"] == 1.0
    assert any(k.startswith("seg.taste=t1&var=") for k in x)
    assert bucket("sku-1") == bucket("sku-1") != bucket("sku-2")
    assert not any(k.startswith("img.") for k in x)
    with_emb = featurize(imp(1), image_embedding=[0.5, -0.5], title_embedding=[0.1])
    assert with_emb["img.1"] == -0.5 and with_emb["img.0&taste=t1"] == 0.5
    assert with_emb["txt.0"] == 0.1


def test_metrics_match_sklearn_and_hand_computed_ne() -> None:
    rnd = random.Random(0)
    ys, ps = [], []
    m = ProgressiveMetrics()
    for _ in range(3000):
        p = rnd.uniform(0.001, 0.3)
        y = rnd.random() < p
        ys.append(y)
        ps.append(p)
        m.update(p, y, "s")
    snap = m.snapshot()
    assert snap["count"] == 3000
    assert snap["logloss"] == pytest.approx(log_loss(ys, ps), rel=1e-9)
    assert snap["auc"] == pytest.approx(roc_auc_score(ys, ps), abs=2e-3)
    ctr = sum(ys) / len(ys)
    assert snap["ne"] == pytest.approx(log_loss(ys, ps) / entropy(ctr), rel=1e-9)
    assert snap["calibration"] == pytest.approx(sum(ps) / len(ps) / ctr)
    assert snap["segments"]["s"]["count"] == 3000


def test_entropy() -> None:
    assert entropy(0.5) == pytest.approx(math.log(2))


def test_fnw_weights() -> None:
    assert fnw_weight(0.2, True) == pytest.approx(1.2)
    assert fnw_weight(0.2, False) == pytest.approx(0.8 * 1.2)


def label(
    i: int, ts: float, clicked: bool, labelled_at: float, late: bool = False
) -> LabelledImpression:
    return LabelledImpression.from_impression(
        imp(i, ts), clicked=clicked, click_delay_s=None, late=late, labelled_at=labelled_at
    )


def test_learner_reorders_by_window_close() -> None:
    learner = Learner(make_model(), window_s=100)
    # a positive decided early waits until the watermark passes ts + window
    assert learner.submit(label(1, 1000, True, labelled_at=1010)) == 0
    assert learner.buffered == 1
    # a negative of an earlier impression arrives and releases only itself
    assert learner.submit(label(0, 900, False, labelled_at=1050)) == 1
    # a later watermark releases the positive
    assert learner.submit(label(2, 1001, False, labelled_at=1101)) == 2
    assert learner.learned == 3 and learner.metrics.snapshot()["count"] == 3
    learner.submit(label(3, 5000, True, labelled_at=5000))
    assert learner.flush() == 1 and learner.buffered == 0


def test_checkpoint_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    learner = Learner(make_model())
    for i in range(50):
        learner.process(label(i, 1000 + i, i % 7 == 0, labelled_at=2000))
    path = save_checkpoint(tmp_path, learner, {"labelled:0": 49}, b"k")
    assert latest_checkpoint(tmp_path) == path
    loaded, offsets = load_checkpoint(path, b"k")
    assert offsets == {"labelled:0": 49}
    assert loaded.predict(imp(99)) == learner.predict(imp(99))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, b"wrong key")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, b"k")


def test_checkpoints_keep_only_the_newest(tmp_path: Path) -> None:
    learner = Learner(make_model())
    paths = [save_checkpoint(tmp_path, learner, {}, b"k", keep=2) for _ in range(4)]
    assert sorted(tmp_path.glob("ckpt-*.bin")) == paths[-2:]


def test_learner_waits_for_the_slowest_partition() -> None:
    learner = Learner(make_model(), window_s=100)
    learner.submit(label(1, 1000, True, labelled_at=1010), source="p0")
    learner.submit(label(2, 1000, False, labelled_at=900), source="p1")
    # p0 races ahead, but p1 has not passed 1100 yet: nothing may be learned
    assert learner.submit(label(3, 5000, False, labelled_at=9000), source="p0") == 0
    assert learner.submit(label(4, 1200, False, labelled_at=1300), source="p1") == 3
