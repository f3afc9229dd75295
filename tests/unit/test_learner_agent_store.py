"""The learner agent checkpoints through the ModelStore port, and still holds its acks.

No Kafka or Redis: fake events stand in for Faust's (``message`` with
``incref``, ``ack``), a fake Redis client takes the metrics, and a
:class:`~online_ctr.store.MemoryModelStore` (or the default file store in a
temporary directory) holds the snapshots.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from online_ctr.checkpoint import LEGACY_FORMAT, latest_checkpoint, load_checkpoint
from online_ctr.duel import serving_learner
from online_ctr.learner import Learner
from online_ctr.models import make_model
from online_ctr.store import FileModelStore, MemoryModelStore, SnapshotInfo
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.learner_agent import LearnerAgent

T0 = 1_767_225_600.0
KEY = "agent-test-key"


class FakeRedis:
    """Takes the metrics the agent publishes."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    refs: int = 1

    def incref(self) -> None:
        self.refs += 1


@dataclass
class FakeEvent:
    message: FakeMessage
    acked: int = 0

    def ack(self) -> None:
        self.acked += 1
        self.message.refs -= 1


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


def agent(tmp_path: Path, store: Any = None) -> LearnerAgent:
    return LearnerAgent(settings(tmp_path), FakeRedis(), KeySpace("t:"), store=store)  # type: ignore[arg-type]


async def test_acks_wait_for_a_snapshot_in_the_store(tmp_path: Path) -> None:
    store = MemoryModelStore()
    learner_agent = agent(tmp_path, store)
    batch = events(range(10))
    await learner_agent.handle_batch(batch)
    assert learner_agent.learner.learned == 10
    assert [e.acked for e in batch] == [0] * 10  # held: no snapshot covers them yet
    assert store.list() == []

    info = await learner_agent.checkpoint()

    assert [e.acked for e in batch] == [1] * 10
    assert store.list() == [info]
    assert dict(info.offsets) == {"labelled:0": 9}
    assert dict(info.metadata) == {
        "model": "default",
        "learned": 10,
        "embeddings": {},
        "encoder": {"champion": "image_encoder", "challenger": None},
    }


async def test_a_restarted_agent_resumes_from_the_store(tmp_path: Path) -> None:
    store = MemoryModelStore()
    first = agent(tmp_path, store)
    await first.handle_batch(events(range(10)))
    await first.checkpoint()

    second = agent(tmp_path, store)
    assert second.offsets == {"labelled:0": 9}
    assert second.learner.learned == 10
    replayed = events(range(12))  # Kafka redelivers from the committed offset
    await second.handle_batch(replayed)
    assert second.learner.learned == 12  # nothing learned twice
    assert [e.message.refs for e in replayed] == [1] * 10 + [2] * 2  # only the new held


async def test_a_failed_save_releases_nothing(tmp_path: Path) -> None:
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
    assert [e.acked for e in batch] == [0, 0, 0]


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
