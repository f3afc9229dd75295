"""The learner agent's per-audience quality: fed by progressive validation, never checkpointed."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

from online_ctr.learner import Learner
from online_ctr.metrics import ProgressiveMetrics
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import serving_learner
from online_ctr.segment_quality import QualityRules
from online_ctr.store import MemoryModelStore
from streams.learner.quality import QualityTap, SegmentQualityFeed
from tests.unit.streams.learner.test_agent_store import FakeRedis, agent, events, labelled


def test_the_tap_sees_every_scored_example_and_nothing_else() -> None:
    learner = Learner(make_model(), window_s=1.0)
    feed = SegmentQualityFeed(QualityRules(window=1000))
    feed.follow(learner)
    for i in range(40):
        learner.predict_then_learn(labelled(i))
    for i in range(40, 50):
        learner.predict_then_learn(labelled(i), scored=False)
    doc = feed.snapshot()
    assert doc["examples"] == learner.metrics.snapshot()["count"] == 40
    taste = {s["value"]: s["count"] for s in doc["segments"] if s["field"] == "taste"}
    assert taste == {"t0": 20, "t1": 20}
    assert doc["overall"]["calibration"] == learner.metrics.snapshot()["calibration"]


def test_a_tapped_learner_pickles_and_copies_as_before() -> None:
    learner = Learner(make_model(), window_s=1.0)
    feed = SegmentQualityFeed(QualityRules())
    feed.follow(learner)
    for i in range(10):
        learner.predict_then_learn(labelled(i))
    assert isinstance(learner.metrics, QualityTap)
    for other in (pickle.loads(pickle.dumps(learner)), copy.deepcopy(learner)):
        assert type(other.metrics) is ProgressiveMetrics
        assert other.metrics.snapshot() == learner.metrics.snapshot()
    assert b"segment_quality" not in pickle.dumps(learner)


def test_a_new_champion_starts_a_fresh_window() -> None:
    old, new = Learner(make_model(), window_s=1.0), Learner(make_model(), window_s=1.0)
    feed = SegmentQualityFeed(QualityRules())
    feed.follow(old)
    for i in range(10):
        old.predict_then_learn(labelled(i))
    feed.follow(old)  # the same learner: the window goes on
    assert feed.snapshot()["examples"] == 10
    feed.follow(new)
    new.predict_then_learn(labelled(11))
    assert feed.snapshot()["examples"] == 1


async def test_the_agent_publishes_quality_in_the_model_metrics(tmp_path: Path) -> None:
    store = MemoryModelStore()
    worker = agent(tmp_path, store=store)
    await worker.handle_batch(events(range(200)))
    await worker.maybe_publish(force=True)
    assert isinstance(worker.client, FakeRedis)
    doc = json.loads(worker.client.values["t:model:metrics"])
    quality = doc["quality"]
    assert quality["examples"] == doc["count"] > 0
    fields = {s["field"] for s in quality["segments"]}
    assert fields == {"device", "geo", "taste"}
    assert quality["rules"]["window"] == worker.settings.quality_window
    saved = store.latest()
    assert saved is not None
    assert type(serving_learner(saved.learner).metrics) is ProgressiveMetrics
