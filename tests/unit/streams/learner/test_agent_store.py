"""The learner agent checkpoints through the ModelStore port, guarded by its lease.

No Kafka or Redis: fake events stand in for the feed's (a ``message`` with
topic, partition, offset, headers and value), a fake Redis client takes the metrics, and a
:class:`~online_ctr.store.MemoryModelStore` (or the default file store in a
temporary directory) holds the snapshots.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from online_ctr.checkpoint import LEGACY_FORMAT, latest_checkpoint, load_checkpoint
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import serving_learner
from online_ctr.store import FileModelStore, MemoryModelStore, SnapshotInfo
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.learner import metrics_publisher as metrics_publisher_module
from streams.learner.agent import LearnerAgent
from streams.learner.lease import LeaseLost
from streams.learner.metrics_publisher import HISTORY_FIELDS, history_point

T0 = 1_767_225_600.0
KEY = "agent-test-key"


class FakeRedis:
    """Takes the metrics the agent publishes (through a pipeline)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    """Queues ``set``, ``rpush`` and ``ltrim``; applies them on ``execute``."""

    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.queued: list[tuple[str, str, Any]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.queued.clear()

    def set(self, key: str, value: str) -> None:
        self.queued.append(("set", key, value))

    def rpush(self, key: str, value: str) -> None:
        self.queued.append(("rpush", key, value))

    def ltrim(self, key: str, start: int, end: int) -> None:
        self.queued.append(("ltrim", key, (start, end)))

    async def execute(self) -> list[Any]:
        for op, key, arg in self.queued:
            if op == "set":
                self.client.values[key] = arg
            elif op == "rpush":
                self.client.lists.setdefault(key, []).append(arg)
            else:
                start, end = arg
                items = self.client.lists.get(key, [])
                stop = len(items) + end + 1 if end < 0 else end + 1
                self.client.lists[key] = items[
                    max(len(items) + start, 0) if start < 0 else start : stop
                ]
        done = [True] * len(self.queued)
        self.queued.clear()
        return done


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class FakeEvent:
    message: FakeMessage


def labelled(i: int) -> LabelledImpression:
    impression = Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=T0 + i,
        item_id=f"sku-{i % 3}",
        image_id="img",
        position=i % 5,
        segment={"device": "mobile", "geo": "DE", "taste": f"t{i % 2}"},
    )
    return LabelledImpression.from_impression(
        impression, clicked=i % 4 == 0, click_delay_s=None, late=False, labelled_at=T0 + 500
    )


def events(offsets: range) -> list[FakeEvent]:
    return [
        FakeEvent(FakeMessage("labelled", 0, i, labelled(i).model_dump_json().encode()))
        for i in offsets
    ]


def settings(tmp_path: Path) -> Settings:
    return Settings(
        checkpoint_dir=str(tmp_path / "checkpoints"),
        checkpoint_key=KEY,
        attribution_window_s=1.0,
        model="default",
    )


def agent(tmp_path: Path, store: Any = None, guard: Any = None) -> LearnerAgent:
    return LearnerAgent(settings(tmp_path), FakeRedis(), KeySpace("t:"), store=store, guard=guard)  # type: ignore[arg-type]


async def test_a_snapshot_records_the_offsets_it_covers(tmp_path: Path) -> None:
    store = MemoryModelStore()
    learner_agent = agent(tmp_path, store)
    learner_agent.identity = {"holder": "w1/abc", "epoch": 3}
    batch = events(range(10))
    await learner_agent.handle_batch(batch)
    assert learner_agent.learner.learned == 10
    assert store.list() == [] and learner_agent.checkpointed == {}

    info = await learner_agent.checkpoint()

    assert store.list() == [info]
    assert dict(info.offsets) == {"labelled:0": 9} == learner_agent.checkpointed
    assert dict(info.metadata) == {
        "model": "default",
        "learned": 10,
        "embeddings": {},
        "learner": {"holder": "w1/abc", "epoch": 3},
        "encoder": {"champion": "image_encoder", "challenger": None},
    }


async def test_a_learner_that_lost_its_lease_saves_nothing(tmp_path: Path) -> None:
    store = MemoryModelStore()
    answers = [True, False]

    async def guard() -> bool:
        return answers.pop(0)

    learner_agent = agent(tmp_path, store, guard)
    await learner_agent.handle_batch(events(range(4)))
    await learner_agent.checkpoint()
    await learner_agent.handle_batch(events(range(4, 8)))
    with pytest.raises(LeaseLost):
        await learner_agent.checkpoint()
    assert [dict(i.offsets) for i in store.list()] == [{"labelled:0": 3}]
    assert learner_agent.checkpointed == {"labelled:0": 3}


async def test_a_restarted_agent_resumes_from_the_store(tmp_path: Path) -> None:
    store = MemoryModelStore()
    first = agent(tmp_path, store)
    await first.handle_batch(events(range(10)))
    await first.checkpoint()

    second = agent(tmp_path, store)
    assert second.offsets == {"labelled:0": 9}
    assert second.learner.learned == 10
    replayed = events(range(12))  # a feed that read from too early
    await second.handle_batch(replayed)
    assert second.learner.learned == 12  # nothing learned twice


async def test_a_failed_save_moves_no_offset(tmp_path: Path) -> None:
    class FailingStore(MemoryModelStore):
        def save(
            self,
            learner: Any,
            offsets: Mapping[str, int],
            metadata: Mapping[str, Any] | None = None,
        ) -> SnapshotInfo:
            raise OSError("disk full")

    learner_agent = agent(tmp_path, FailingStore())
    batch = events(range(3))
    await learner_agent.handle_batch(batch)
    with pytest.raises(OSError, match="disk full"):
        await learner_agent.checkpoint()
    assert learner_agent.checkpointed == {}


async def test_default_store_is_the_checkpoint_directory(tmp_path: Path) -> None:
    """Settings pick the file store; the files stay readable by the old functions."""
    learner_agent = agent(tmp_path)
    assert isinstance(learner_agent.store, FileModelStore)
    await learner_agent.handle_batch(events(range(5)))
    info = await learner_agent.checkpoint()

    directory = tmp_path / "checkpoints"
    path = latest_checkpoint(directory)
    assert path is not None and path.name == info.name
    saved, offsets = load_checkpoint(path, KEY.encode())
    learner = serving_learner(saved)  # the snapshot holds the champion (and any challenger)
    assert isinstance(learner, Learner) and learner.learned == 5
    assert offsets == {"labelled:0": 4}
    snapshot = FileModelStore(directory, KEY.encode()).latest()
    assert snapshot is not None and snapshot.metadata["model"] == "default"
    assert agent(tmp_path).offsets == {"labelled:0": 4}


def test_resumes_from_a_checkpoint_written_before_metadata(tmp_path: Path) -> None:
    learner = Learner(make_model())
    for i in range(7):
        learner.predict_then_learn(labelled(i))
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    payload = pickle.dumps((LEGACY_FORMAT, learner, {"labelled:0": 6}))
    (directory / f"ckpt-{1:020d}.bin").write_bytes(
        hmac.new(KEY.encode(), payload, hashlib.sha256).digest() + payload
    )
    resumed = agent(tmp_path)
    assert resumed.offsets == {"labelled:0": 6}
    assert resumed.learner.learned == 7


async def test_a_resumed_model_keeps_its_own_name(tmp_path: Path) -> None:
    store = MemoryModelStore()
    store.save(Learner(make_model()), {"labelled:0": 1}, {"model": "other", "learned": 0})
    resumed = agent(tmp_path, store)  # configured as "default"
    assert resumed.model_name == "other"
    info = await resumed.checkpoint()
    assert info.metadata["model"] == "other"


def test_an_unreadable_store_starts_a_fresh_model(tmp_path: Path) -> None:
    class BrokenStore(MemoryModelStore):
        def latest(self) -> None:
            raise OSError("permission denied")

    fresh = agent(tmp_path, BrokenStore())
    assert fresh.offsets == {}
    assert fresh.learner.learned == 0


async def test_metrics_history_is_throttled_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``model:history`` point per MODEL_HISTORY_EVERY_S of wall time, the newest N kept."""
    wall = [1_000.0]
    monkeypatch.setattr(time, "time", lambda: wall[0])
    monkeypatch.setattr(metrics_publisher_module, "MODEL_HISTORY_LEN", 5)
    learner_agent = agent(tmp_path, MemoryModelStore())
    await learner_agent.handle_batch(events(range(40)))  # publishes the first point
    assert learner_agent.learner.metrics.snapshot()["count"] > 0
    client = learner_agent.client
    assert isinstance(client, FakeRedis)
    key = learner_agent.keys.model_history
    for _ in range(200):  # 200 wall seconds, metrics published every second
        await learner_agent.maybe_publish(force=True)
        wall[0] += 1.0
    points = [json.loads(p) for p in client.lists[key]]
    assert len(points) == 5  # 21 were written, the bound keeps the newest
    assert [p["t"] for p in points] == [1_150.0, 1_160.0, 1_170.0, 1_180.0, 1_190.0]
    assert set(points[-1]) == {"t", *HISTORY_FIELDS}
    assert (
        json.loads(client.values[learner_agent.keys.model_metrics])["count"] == points[-1]["count"]
    )


def test_no_history_point_before_the_first_scored_example() -> None:
    assert history_point({"count": 0, "ne": None}, 1.0) is None
    point = history_point({"count": 3, "ne": 0.9, "auc": 0.6, "segments": {"a": {}}}, 2.0)
    assert point == {
        "t": 2.0,
        "count": 3,
        "logloss": None,
        "ne": 0.9,
        "auc": 0.6,
        "calibration": None,
        "watermark": None,
    }
