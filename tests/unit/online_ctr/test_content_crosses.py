"""Content crosses follow what a segment field holds, not what it is called.

Producers name their own segment fields, so a field the simulator calls
``taste`` must learn the same under any other name, and a field of many
values (a user bucket) must not give every value its own weights per item.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bertctr.judge import true_attributes
from online_ctr.features import AUTO, DEFAULT_SPEC, FeatureSpec, featurize
from online_ctr.learner import Learner
from online_ctr.models.ftrl import FTRLProximalClassifier
from online_ctr.models.registry import make_model
from online_ctr.store import MemoryModelStore
from schemas import Impression
from schemas.keys import KeySpace
from schemas.settings import Settings
from simulator import SimConfig, Simulator
from simulator.labelled import OfflineExample, labelled_stream
from streams.learner.agent import LearnerAgent

N = 3000


@pytest.fixture(scope="module")
def sim_and_stream() -> tuple[Simulator, list[OfflineExample]]:
    sim = Simulator(SimConfig(seed=7, impressions_per_s=5.0))
    return sim, labelled_stream(sim, N)


def with_segment(
    stream: Sequence[OfflineExample], change: Callable[[int, dict[str, str]], dict[str, str]]
) -> list[OfflineExample]:
    """``stream`` with every impression's segment replaced by ``change(i, segment)``."""
    out = []
    for i, e in enumerate(stream):
        doc = e.impression.model_dump()
        doc["segment"] = change(i, e.impression.segment.as_dict())
        out.append(OfflineExample(Impression.model_validate(doc), e.clicked, e.true_p))
    return out


def rename(segment: dict[str, str]) -> dict[str, str]:
    return {("cohort" if k == "taste" else k): v for k, v in segment.items()}


def ftrl(learner: Learner) -> FTRLProximalClassifier:
    """The learner's model, which these tests build as FTRL (the default)."""
    assert isinstance(learner.model, FTRLProximalClassifier)
    return learner.model


def learn(
    sim: Simulator, stream: Sequence[OfflineExample], spec: FeatureSpec = DEFAULT_SPEC
) -> Learner:
    """Learn ``stream`` progressively, with the hidden attributes as image embeddings."""
    images = true_attributes(sim)
    learner = Learner(make_model(with_content=True), spec=spec)
    for e in stream:
        learner.predict_then_learn(e.labelled(), images[e.impression.image_id])
    return learner


def test_renaming_taste_learns_the_same(
    sim_and_stream: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, stream = sim_and_stream
    renamed = with_segment(stream, lambda _, s: rename(s))
    original, other = learn(sim, stream), learn(sim, renamed)
    assert original.audience.crossed == {"taste"} and other.audience.crossed == {"cohort"}
    ne = original.metrics.snapshot()["ne"]
    # the same features in another order: only the float sums' order differs
    assert other.metrics.snapshot()["ne"] == pytest.approx(ne, abs=1e-9)
    learned = {str(k).replace("seg.taste=", "seg.cohort=") for k in ftrl(original)._z}
    assert learned == set(ftrl(other)._z)
    assert any("seg.cohort=" in k and "&img_" not in k and "&" in k for k in learned)

    # Crosses named in a list are the names they are: the same rename under
    # the spec before auto loses taste's crosses and learns something else.
    names = FeatureSpec.from_setting("device=ids,taste")
    before, after = learn(sim, stream, names), learn(sim, renamed, names)
    before_ne = before.metrics.snapshot()["ne"]
    assert after.metrics.snapshot()["ne"] != pytest.approx(before_ne, abs=1e-4)
    renamed_before = {str(k).replace("seg.taste=", "seg.cohort=") for k in ftrl(before)._z}
    assert renamed_before != set(ftrl(after)._z)


def test_a_field_of_many_values_is_not_crossed(
    sim_and_stream: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, stream = sim_and_stream
    bucketed = with_segment(stream, lambda i, s: {**s, "user_bucket": f"u{i % 1000}"})
    learner = learn(sim, bucketed)
    assert learner.spec.id_cross_fields == AUTO
    assert learner.audience.crossed == {"taste"}
    last = bucketed[-1].impression
    x = learner.features(last, true_attributes(sim)[last.image_id])
    assert any(k.startswith("seg.taste=") and "&" in k for k in x)
    assert "seg.user_bucket=u999" in x  # still one-hot, only never crossed
    assert not any(k.startswith("seg.user_bucket=") and "&" in k for k in x)


def agent(tmp_path: Path, store: MemoryModelStore, **settings: Any) -> LearnerAgent:
    config = Settings(checkpoint_dir=str(tmp_path), **settings)
    return LearnerAgent(config, client=None, keys=KeySpace("t:"), store=store)  # type: ignore[arg-type]


def test_the_worker_builds_its_crosses_from_the_settings(tmp_path: Path) -> None:
    store = MemoryModelStore()
    fresh = agent(tmp_path, store)
    assert fresh.learner.spec == DEFAULT_SPEC and fresh.learner.spec.auto
    named = agent(
        tmp_path, store, content_cross_fields="device=ids,taste", content_cross_max_values=9
    )
    assert named.learner.spec == FeatureSpec(
        ("device", "taste"), ("taste",), ("taste",), auto_max_values=9
    )
    store.save(named.learner, {"labelled:0": 1}, {"model": "default", "learned": 0})
    resumed = agent(tmp_path, store)  # configured auto, resumes the named crosses
    assert resumed.learner.spec == named.learner.spec


def test_learners_pickled_before_auto_keep_their_crosses(
    sim_and_stream: tuple[Simulator, list[OfflineExample]],
) -> None:
    """A learner pickled with the old default spec and no ``audience`` loads as it was."""
    sim, stream = sim_and_stream
    old_spec = FeatureSpec(("device", "taste"), ("taste",), ("taste",))
    learner = learn(sim, stream[:500], old_spec)
    state = dict(learner.__dict__)
    del state["audience"]
    spec_state = dict(old_spec.__dict__)
    del spec_state["auto_max_values"]
    state["spec"] = FeatureSpec.__new__(FeatureSpec)
    state["spec"].__dict__.update(spec_state)  # as unpickled from before the field
    restored = Learner.__new__(Learner)
    restored.__setstate__(pickle.loads(pickle.dumps(state)))
    assert restored.spec == old_spec and not restored.spec.auto
    e = stream[600]
    assert restored.features(e.impression) == featurize(e.impression, spec=old_spec)
    assert restored.predict(e.impression) == learner.predict(e.impression)
    restored.predict_then_learn(e.labelled())
    assert restored.audience.crossed == frozenset()  # nothing counted: the spec names its fields
