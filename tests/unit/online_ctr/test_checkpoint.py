"""Checkpoints: round trip, offsets, tamper detection, atomic writes."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import sys
from pathlib import Path

import pytest

from online_ctr.checkpoint import (
    MOVED,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import EncoderDuel
from schemas import Impression, LabelledImpression

KEY = b"test-key"
T0 = 1_767_225_600.0
EXPLODED: list[str] = []


def imp(i: int) -> Impression:
    return Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=T0 + i,
        item_id=f"sku-{i % 3}",
        image_id="img",
        position=i % 5,
        segment={"device": "mobile", "geo": "DE", "taste": f"t{i % 2}"},
    )


def trained_learner() -> Learner:
    learner = Learner(make_model())
    for i in range(60):
        learner.predict_then_learn(
            LabelledImpression.from_impression(
                imp(i), clicked=i % 7 == 0, click_delay_s=None, late=False, labelled_at=T0 + 99
            )
        )
    return learner


class Boom:
    """Unpickling this records that code ran: a forged checkpoint must never get here."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (EXPLODED.append, ("unpickled",))


def test_round_trip_keeps_model_metrics_and_offsets(tmp_path: Path) -> None:
    learner = trained_learner()
    path = save_checkpoint(tmp_path, learner, {"labelled:0": 59, "labelled:1": 3}, KEY)
    assert latest_checkpoint(tmp_path) == path
    loaded, offsets = load_checkpoint(path, KEY)
    assert offsets == {"labelled:0": 59, "labelled:1": 3}
    assert isinstance(loaded, Learner)
    assert loaded.predict(imp(99)) == learner.predict(imp(99))
    assert loaded.metrics.snapshot() == learner.metrics.snapshot()
    assert loaded.learned == 60


def test_a_snapshot_pickled_before_the_rooms_moved_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model saved when its classes lived at their old paths resumes after the upgrade."""
    learner = trained_learner()
    moved = {cls: cls.__module__ for cls in (type(learner.model), EncoderDuel)}
    old = {new: old for old, new in MOVED.items()}
    for cls, module in moved.items():  # pickle exactly as the previous release did
        monkeypatch.setattr(cls, "__module__", old[module])
        monkeypatch.setitem(sys.modules, old[module], sys.modules[module])
    path = save_checkpoint(tmp_path, EncoderDuel(learner, "image_encoder"), {"p:0": 5}, KEY)
    monkeypatch.undo()
    raw = path.read_bytes()
    assert b"online_ctr.ftrl" in raw and b"online_ctr.duel" in raw
    assert "online_ctr.ftrl" not in sys.modules and "online_ctr.duel" not in sys.modules
    loaded, offsets = load_checkpoint(path, KEY)
    assert isinstance(loaded, EncoderDuel) and offsets == {"p:0": 5}
    assert loaded.champion.predict(imp(99)) == learner.predict(imp(99))


def test_wrong_key_and_changed_bytes_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, trained_learner(), {"labelled:0": 1}, KEY)
    with pytest.raises(CheckpointError):
        load_checkpoint(path, b"another key")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, KEY)
    path.write_bytes(b"short")
    with pytest.raises(CheckpointError):
        load_checkpoint(path, KEY)


def test_forged_payload_is_never_unpickled(tmp_path: Path) -> None:
    payload = pickle.dumps(Boom())
    forged = tmp_path / "ckpt-00000000000000000001.bin"
    forged.write_bytes(hmac.new(b"attacker", payload, hashlib.sha256).digest() + payload)
    with pytest.raises(CheckpointError):
        load_checkpoint(forged, KEY)
    assert EXPLODED == []


def test_other_formats_are_refused(tmp_path: Path) -> None:
    payload = pickle.dumps(("learner", {"labelled:0": 1}))  # the layout before FORMAT
    old = tmp_path / "ckpt-old.bin"
    old.write_bytes(hmac.new(KEY, payload, hashlib.sha256).digest() + payload)
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(old, KEY)


def test_empty_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        save_checkpoint(tmp_path, {}, {}, b"")


def test_keeps_only_the_newest_and_leaves_no_temporaries(tmp_path: Path) -> None:
    paths = [save_checkpoint(tmp_path, {"n": i}, {"labelled:0": i}, KEY, keep=2) for i in range(4)]
    assert sorted(tmp_path.iterdir()) == paths[-2:]
    assert load_checkpoint(latest_checkpoint(tmp_path) or paths[0], KEY)[1] == {"labelled:0": 3}


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"n": 1}, {}, KEY)
    before = sorted(tmp_path.iterdir())
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(tmp_path, lambda: None, {}, KEY)
    assert sorted(tmp_path.iterdir()) == before


def test_latest_checkpoint_of_missing_or_empty_directory(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
