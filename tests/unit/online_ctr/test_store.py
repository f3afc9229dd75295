"""The ModelStore contract, run against every adapter (file and in-memory).

Both adapters must behave the same, so a test written against the memory
fake holds for the files a worker writes; adapter-specific checks (old
checkpoint files, path names) follow the contract tests.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from online_ctr.checkpoint import (
    LEGACY_FORMAT,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.store import (
    FileModelStore,
    MemoryModelStore,
    ModelStore,
    Snapshot,
    SnapshotInfo,
    SnapshotNotFound,
)
from schemas import Impression, LabelledImpression

KEY = b"store-test-key"
T0 = 1_767_225_600.0


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


def trained_learner(n: int = 40) -> Learner:
    learner = Learner(make_model())
    for i in range(n):
        learner.predict_then_learn(
            LabelledImpression.from_impression(
                imp(i), clicked=i % 5 == 0, click_delay_s=None, late=False, labelled_at=T0 + 99
            )
        )
    return learner


@dataclass
class Adapter:
    """A store under test, and how to damage one of its snapshots behind its back."""

    store: ModelStore
    tamper: Callable[[str], None]


def _file_adapter(directory: Path) -> Adapter:
    def tamper(name: str) -> None:
        path = directory / name
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    return Adapter(FileModelStore(directory, KEY), tamper)


def _memory_adapter(directory: Path) -> Adapter:
    store = MemoryModelStore(KEY)
    return Adapter(store, store.tamper)


@pytest.fixture(params=[_file_adapter, _memory_adapter], ids=["file", "memory"])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    make: Callable[[Path], Adapter] = request.param
    yield make(tmp_path / "snapshots")


# --- the contract -------------------------------------------------------------


def test_adapters_satisfy_the_protocol(adapter: Adapter) -> None:
    assert isinstance(adapter.store, ModelStore)


def test_empty_store(adapter: Adapter) -> None:
    assert adapter.store.list() == []
    assert adapter.store.latest() is None
    assert adapter.store.newest() is None


def test_save_latest_load_list_round_trip(adapter: Adapter) -> None:
    store = adapter.store
    learner = trained_learner()
    offsets = {"labelled:0": 59, "labelled:1": 3}
    metadata = {"model": "ftrl", "learned": 40, "embeddings": {"clip-image": 2}}
    info = store.save(learner, offsets, metadata)

    assert isinstance(info, SnapshotInfo)
    assert dict(info.offsets) == offsets
    assert dict(info.metadata) == metadata
    assert info.created_at > T0

    latest = store.latest()
    assert isinstance(latest, Snapshot)
    assert latest.info == info
    assert isinstance(latest.learner, Learner)
    assert latest.learner is not learner
    assert latest.learner.predict(imp(99)) == learner.predict(imp(99))
    assert latest.learner.metrics.snapshot() == learner.metrics.snapshot()
    assert latest.learner.learned == 40

    loaded = store.load(info.name)
    assert loaded.info == info
    assert loaded.learner.predict(imp(99)) == learner.predict(imp(99))
    assert store.list() == [info]


def test_metadata_defaults_to_empty(adapter: Adapter) -> None:
    info = adapter.store.save({"n": 1}, {"labelled:0": 1})
    assert dict(info.metadata) == {}
    latest = adapter.store.latest()
    assert latest is not None and dict(latest.metadata) == {}


def test_newest_wins_and_list_is_oldest_first(adapter: Adapter) -> None:
    store = adapter.store
    infos = [store.save({"n": i}, {"labelled:0": i}, {"n": i}) for i in range(3)]
    assert len({info.name for info in infos}) == 3
    assert store.list() == infos
    assert [info.name for info in infos] == sorted(info.name for info in infos)
    latest = store.latest()
    assert latest is not None
    assert latest.learner == {"n": 2}
    assert latest.info == infos[-1]
    assert store.newest() == infos[-1].name
    assert store.load(infos[0].name).learner == {"n": 0}


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    for store in (FileModelStore(tmp_path, KEY, keep=2), MemoryModelStore(KEY, keep=2)):
        infos = [store.save({"n": i}, {"labelled:0": i}) for i in range(4)]
        assert store.list() == infos[-2:]
        with pytest.raises(SnapshotNotFound):
            store.load(infos[0].name)


def test_save_copies_what_it_is_given(adapter: Adapter) -> None:
    learner = trained_learner(10)
    before = learner.predict(imp(99))
    offsets = {"labelled:0": 9}
    metadata: dict[str, object] = {"model": "ftrl", "embeddings": {"clip": 1}}
    info = adapter.store.save(learner, offsets, metadata)

    for i in range(10, 60):  # the caller keeps learning after the save
        learner.predict_then_learn(
            LabelledImpression.from_impression(
                imp(i), clicked=True, click_delay_s=1.0, late=False, labelled_at=T0 + 99
            )
        )
    offsets["labelled:0"] = 59
    metadata["model"] = "changed"
    embeddings = metadata["embeddings"]
    assert isinstance(embeddings, dict)
    embeddings["clip"] = 2
    assert learner.predict(imp(99)) != before

    for snapshot in (adapter.store.latest(), adapter.store.load(info.name)):
        assert snapshot is not None
        assert snapshot.learner.learned == 10
        assert snapshot.learner.predict(imp(99)) == before
        assert dict(snapshot.offsets) == {"labelled:0": 9}
        assert snapshot.metadata == {"model": "ftrl", "embeddings": {"clip": 1}}
    assert info.metadata == {"model": "ftrl", "embeddings": {"clip": 1}}
    assert dict(info.offsets) == {"labelled:0": 9}


def test_changing_a_loaded_learner_does_not_change_the_store(adapter: Adapter) -> None:
    adapter.store.save({"n": [1]}, {})
    first = adapter.store.latest()
    assert first is not None
    first.learner["n"].append(2)
    again = adapter.store.latest()
    assert again is not None and again.learner == {"n": [1]}


def test_tampered_snapshot_is_refused_and_latest_falls_back(adapter: Adapter) -> None:
    store = adapter.store
    older = store.save({"n": 1}, {"labelled:0": 1}, {"n": 1})
    newer = store.save({"n": 2}, {"labelled:0": 2}, {"n": 2})
    adapter.tamper(newer.name)

    with pytest.raises(CheckpointError, match="signature"):
        store.load(newer.name)
    latest = store.latest()  # documented: the newest snapshot that verifies
    assert latest is not None and latest.info == older
    assert store.list() == [older]  # only snapshots that verify are listed

    adapter.tamper(older.name)
    assert store.latest() is None
    assert store.list() == []


UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Boom:
    """Unpickling this records that code ran: a forged snapshot must never get here."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_record_unpickling, ("unpickled",))


def test_forged_snapshot_is_never_unpickled(tmp_path: Path) -> None:
    """Signed with another key: refused before unpickling runs any code."""
    info = FileModelStore(tmp_path, b"attacker").save(Boom(), {}, {"boom": Boom()})
    UNPICKLED.clear()  # the writer's copy of the metadata ran it; only reads count
    store = FileModelStore(tmp_path, KEY)
    with pytest.raises(CheckpointError):
        store.load(info.name)
    assert store.latest() is None
    assert store.list() == []
    assert UNPICKLED == []
    assert FileModelStore(tmp_path, b"attacker").load(info.name).learner == "unpickled"
    assert "unpickled" in UNPICKLED  # with the right key it runs: the check was not vacuous


def test_unknown_name_raises_a_clear_key_error(adapter: Adapter) -> None:
    adapter.store.save({"n": 1}, {})
    with pytest.raises(SnapshotNotFound, match=r"no snapshot named 'ckpt-nope\.bin'") as caught:
        adapter.store.load("ckpt-nope.bin")
    assert isinstance(caught.value, KeyError)


@pytest.mark.parametrize("name", ["../ckpt-1.bin", "/etc/passwd", "model.pkl", "", "."])
def test_file_store_refuses_names_outside_its_files(tmp_path: Path, name: str) -> None:
    store = FileModelStore(tmp_path / "snapshots", KEY)
    save_checkpoint(tmp_path, {"n": 1}, {}, KEY)  # a valid file one level up
    with pytest.raises(SnapshotNotFound):
        store.load(name)


def test_empty_secret_and_bad_keep_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        FileModelStore(tmp_path, b"")
    with pytest.raises(ValueError, match="empty"):
        MemoryModelStore(b"")
    with pytest.raises(ValueError, match="keep"):
        FileModelStore(tmp_path, KEY, keep=0)


# --- the file adapter and the checkpoint format -------------------------------


def _legacy_file(directory: Path, learner: object, offsets: dict[str, int], stamp: int) -> Path:
    """A checkpoint exactly as written before metadata existed (format 2)."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps((LEGACY_FORMAT, learner, offsets), protocol=pickle.HIGHEST_PROTOCOL)
    path = directory / f"ckpt-{stamp:020d}.bin"
    path.write_bytes(hmac.new(KEY, payload, hashlib.sha256).digest() + payload)
    return path


def test_old_format_checkpoint_loads_with_empty_metadata(tmp_path: Path) -> None:
    learner = trained_learner()
    stamp = 1_767_225_600_123_456_789
    path = _legacy_file(tmp_path, learner, {"labelled:0": 39}, stamp)
    store = FileModelStore(tmp_path, KEY)

    latest = store.latest()
    assert latest is not None
    assert latest.name == path.name
    assert dict(latest.offsets) == {"labelled:0": 39}
    assert dict(latest.metadata) == {}
    assert latest.created_at == pytest.approx(stamp / 1e9)
    assert latest.learner.predict(imp(99)) == learner.predict(imp(99))
    assert store.list() == [latest.info]
    assert store.load(path.name).learner.learned == 40
    # the functions evaluation and the demo still call read it too
    assert latest_checkpoint(tmp_path) == path
    assert load_checkpoint(path, KEY)[1] == {"labelled:0": 39}


def test_new_snapshots_supersede_old_files_and_prune_them(tmp_path: Path) -> None:
    _legacy_file(tmp_path, {"n": "old"}, {"labelled:0": 1}, 1_000_000_000_000_000_000)
    store = FileModelStore(tmp_path, KEY, keep=2)
    infos = [store.save({"n": i}, {"labelled:0": 2 + i}) for i in range(2)]
    latest = store.latest()
    assert latest is not None and latest.learner == {"n": 1}
    assert store.list() == infos
    assert sorted(p.name for p in tmp_path.iterdir()) == [info.name for info in infos]


def test_files_are_readable_by_the_checkpoint_functions(tmp_path: Path) -> None:
    """Readers not yet on the port (evaluation, demo) read what the store writes."""
    store = FileModelStore(tmp_path, KEY)
    info = store.save({"n": 1}, {"labelled:0": 5}, {"model": "ftrl"})
    path = latest_checkpoint(tmp_path)
    assert path is not None and path.name == info.name
    assert load_checkpoint(path, KEY) == ({"n": 1}, {"labelled:0": 5})


def test_another_reader_sees_the_writers_snapshots(tmp_path: Path) -> None:
    """What the port is for: a second process's store reads the learner's saves."""
    writer, reader = FileModelStore(tmp_path, KEY), FileModelStore(tmp_path, KEY)
    info = writer.save({"n": 1}, {"labelled:0": 5}, {"model": "ftrl"})
    latest = reader.latest()
    assert latest is not None and latest.info == info


def test_names_sort_by_creation_even_if_the_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileModelStore(tmp_path, KEY)
    first = store.save({"n": 1}, {})
    monkeypatch.setattr("online_ctr.checkpoint.time.time_ns", lambda: 1)
    second = store.save({"n": 2}, {})
    assert second.name > first.name
    latest = store.latest()
    assert latest is not None and latest.learner == {"n": 2}


class Renamed:
    """Pickled by reference to this module; removed to break unpickling."""


def test_signed_but_unloadable_snapshot_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class renamed since the save: the signature holds, unpickling fails."""
    store = FileModelStore(tmp_path, KEY)
    older = store.save({"n": 1}, {})
    newer = store.save(Renamed(), {})
    monkeypatch.delattr(sys.modules[__name__], "Renamed")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        store.load(newer.name)
    latest = store.latest()
    assert latest is not None and latest.info == older
    assert store.list() == [older, newer]  # the header still reads


def test_repr_names_the_store_and_never_the_secret(tmp_path: Path) -> None:
    assert "store-test-key" not in repr(FileModelStore(tmp_path, KEY))
    assert "store-test-key" not in repr(MemoryModelStore(KEY))
