"""The learner: predict-then-learn, late corrections, FNW, reorder buffer, dedup."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from online_ctr.fnw import FNW, fnw_weight
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from schemas import Impression, LabelledImpression

T0 = 1_767_225_600.0


def imp(i: int, ts: float = T0, taste: str = "t1") -> Impression:
    return Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=ts,
        item_id="sku-1",
        image_id="img",
        variant="v2",
        title="red shoe",
        position=1,
        segment={"device": "mobile", "geo": "DE", "taste": taste},
    )


def label(
    i: int, ts: float, clicked: bool, labelled_at: float, late: bool = False, taste: str = "t1"
) -> LabelledImpression:
    return LabelledImpression.from_impression(
        imp(i, ts, taste), clicked=clicked, click_delay_s=None, late=late, labelled_at=labelled_at
    )


class Recorder:
    """A stand-in model that records what it is asked to learn."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p
        self.learned: list[tuple[dict[str, float], bool, float]] = []

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        return {False: 1 - self.p, True: self.p}

    def learn_one(self, x: dict[str, Any], y: bool, w: float = 1.0) -> None:
        self.learned.append((x, y, w))


def test_fnw_weights_and_late_label() -> None:
    assert fnw_weight(0.2, True) == pytest.approx(1.2)
    assert fnw_weight(0.2, False) == pytest.approx(0.8 * 1.2)
    assert FNW(enabled=True).weight(0.5, False) == pytest.approx(0.75)
    assert FNW(enabled=False).weight(0.5, True) == 1.0
    assert FNW.label(label(1, T0, clicked=True, labelled_at=T0, late=True))
    assert not FNW.label(label(1, T0, clicked=False, labelled_at=T0))


def test_process_scores_before_learning() -> None:
    learner = Learner(make_model())
    example = label(1, T0, clicked=True, labelled_at=T0)
    before = learner.predict(example)
    assert learner.predict_then_learn(example) == before
    assert learner.predict(example) > before  # and then it learned the click
    assert learner.learned == 1 and learner.metrics.snapshot()["count"] == 1


def test_predict_changes_nothing() -> None:
    learner = Learner(make_model())
    for i in range(20):
        learner.predict_then_learn(label(i, T0 + i, clicked=i % 4 == 0, labelled_at=T0))
    state = pickle.dumps(learner)
    learner.predict(imp(99), image_embedding=[0.1, 0.2])
    assert pickle.dumps(learner) == state


def test_late_correction_is_a_new_positive_and_counted_as_one() -> None:
    model = Recorder(p=0.25)
    learner = Learner(model)
    learner.predict_then_learn(label(1, T0, clicked=False, labelled_at=T0 + 1800))
    learner.predict_then_learn(label(1, T0, clicked=True, labelled_at=T0 + 4000, late=True))
    assert [(y, w) for _, y, w in model.learned] == [(False, 1.0), (True, 1.0)]
    snap = learner.metrics.snapshot()
    assert snap["count"] == 2 and snap["ctr"] == 0.5


def test_fnw_weights_are_applied_when_enabled() -> None:
    model = Recorder(p=0.25)
    learner = Learner(model, fnw=True)
    learner.predict_then_learn(label(1, T0, clicked=True, labelled_at=T0))
    learner.predict_then_learn(label(2, T0, clicked=False, labelled_at=T0))
    assert [w for _, _, w in model.learned] == pytest.approx([1.25, 0.75 * 1.25])


def test_embeddings_reach_the_model_through_the_buffer() -> None:
    model = Recorder()
    learner = Learner(model, window_s=10)
    learner.submit(label(1, T0, True, labelled_at=T0), image_embedding=[0.3], title_embedding=[0.7])
    assert learner.flush() == 1
    x = model.learned[0][0]
    assert x["img_0"] == 0.3 and x["txt_0"] == 0.7


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


def test_each_partition_waits_for_its_own_watermark_only() -> None:
    """A labelled partition carries one join partition's labels in order, so its own
    watermark says its windows are complete; a lagging partition holds nobody else."""
    learner = Learner(make_model(), window_s=100)
    learner.submit(label(1, 1000, True, labelled_at=1010), source="p0")
    learner.submit(label(2, 1000, False, labelled_at=900), source="p1")
    # p0 passes 1100 (and 5100): its examples are due, while p1's waits for p1
    assert learner.submit(label(3, 5000, False, labelled_at=9000), source="p0") == 2
    assert learner.buffered == 1 and learner.watermark == 900
    assert learner.submit(label(4, 1200, False, labelled_at=1300), source="p1") == 2
    assert learner.watermark == 1300


def test_replayed_labels_are_learned_once() -> None:
    learner = Learner(make_model(), window_s=100)
    first = label(1, 1000, True, labelled_at=1010)
    learner.submit(first)
    learner.submit(first)  # a replay while buffered
    assert learner.submit(label(2, 1200, False, labelled_at=1105)) == 1  # releases `first`
    learner.submit(first)  # a replay after it was learned, within the horizon
    assert learner.flush() == 1
    assert learner.learned == 2 and learner.duplicates == 2
    # the late correction of the same impression has its own label id
    learner.submit(label(1, 1000, True, labelled_at=1400, late=True))
    assert learner.learned == 3


def test_dedup_memory_is_bounded_by_the_horizon() -> None:
    learner = Learner(make_model(), window_s=10, dedup_horizon_s=50)
    for i in range(100):
        learner.submit(label(i, 1000 + i * 10, False, labelled_at=1010 + i * 10))
    assert len(learner._seen) <= 7


def test_a_watermark_record_releases_the_buffer_in_order_on_a_quiet_stream() -> None:
    """No new label comes, yet the join's watermark says the windows closed."""
    learner = Learner(Recorder(), window_s=60)
    # a positive of an impression at T0, labelled when its click came (T0+5)
    learner.submit(label(1, T0, clicked=True, labelled_at=T0 + 5), source="labelled:0")
    assert learner.buffered == 1
    assert learner.advance("labelled:0", T0 + 59) == 0  # its window is still open
    assert learner.advance("labelled:0", None) == 0  # an empty partition says nothing
    assert learner.advance("labelled:0", T0 + 60) == 1
    assert learner.metrics.snapshot()["count"] == 1 and learner.unscored == 0


def test_a_buffer_stays_bounded_when_one_partition_lags() -> None:
    learner = Learner(Recorder(), window_s=60)
    learner.submit(label(0, T0, clicked=False, labelled_at=T0), source="labelled:1")
    for i in range(1, 1001):  # labelled:0 is read 1,000 s ahead of labelled:1
        ts = T0 + i
        learner.submit(label(i, ts, clicked=False, labelled_at=ts), source="labelled:0")
    assert learner.buffered <= 62


def test_pickles_from_the_single_buffer_version_still_load() -> None:
    learner = Learner(Recorder(), window_s=60)
    learner.submit(label(1, T0, clicked=True, labelled_at=T0 + 5), source="labelled:0")
    state = dict(learner.__dict__)
    old = {k: v for k, v in state.items() if k not in {"_buffers", "_legacy", "_seen_expiry"}}
    old["_buffer"] = list(state["_buffers"]["labelled:0"])
    old["_seen_expiry"] = list(state["_seen_expiry"]["labelled:0"])
    restored = Learner.__new__(Learner)
    restored.__setstate__(old)
    assert restored.buffered == 1
    assert restored.advance("labelled:0", T0 + 60) == 1 and restored.buffered == 0


def test_flush_unscored_learns_but_keeps_the_metrics_honest() -> None:
    model = Recorder()
    learner = Learner(model, window_s=60)
    for i in range(5):
        learner.submit(label(i, T0 + i, clicked=True, labelled_at=T0 + i), source="labelled:0")
    assert learner.flush_unscored() == 5
    assert len(model.learned) == 5 and learner.learned == 5 and learner.unscored == 5
    assert learner.metrics.snapshot()["count"] == 0
    assert learner.buffered == 0


def test_old_pickles_have_no_unscored_examples() -> None:
    learner = Learner(make_model(), window_s=60)
    learner.__dict__.pop("unscored", None)  # as pickled before the attribute existed
    restored = pickle.loads(pickle.dumps(learner))
    assert restored.unscored == 0
