"""The encoder version repository, the poller that serves it and the exporter, without Triton.

The repository is the contract between a fine-tuning job and a running
server, so what is pinned here is what either side relies on: numbering,
atomic and never-overwriting publication, a head checked against its
description, and a server-side poller for which no bad version is ever fatal
and a failed one is retried only when its files change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from encoder_server.base import Encoded, Encoder, Modality, model_of, served_name
from encoder_server.projection import Projection
from encoder_server.serving.loader import VersionPoller, version_encoder
from encoder_server.serving.repository import (
    HEAD_FILE,
    STATUS_FILE,
    VERSION_FILE,
    BadVersion,
    EncoderRepository,
    VersionStatus,
    projection_fingerprint,
)

MODEL = "image_encoder"


def head(seed: int = 0, d_in: int = 16, d_out: int = 4) -> Projection:
    return Projection.random(d_in, d_out, seed=seed)


class HeadEncoder:
    """An encoder that is only its head: checks ``d_in`` like the real ones do."""

    name = MODEL
    modality: Modality = "image"

    def __init__(self, projection: Projection) -> None:
        if projection.d_in != 16:
            raise ValueError(f"projection expects {projection.d_in} features, not 16")
        self.projection = projection
        self.version = projection.version
        self.dim = projection.d_out

    def encode(self, items: Sequence[bytes]) -> Encoded:
        return Encoded(np.zeros((len(items), self.dim), np.float32), [""] * len(items))


def make(base: Encoder, projection: Projection) -> Encoder:
    return HeadEncoder(projection)


class RecordingBind:
    """Stands in for :func:`encoder_server.serving.serve.bind_live`; fails for chosen names."""

    def __init__(self, failing: Sequence[str] = ()) -> None:
        self.failing = set(failing)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, encoder: Encoder, name: str) -> str:
        self.calls.append((name, encoder.version))
        if name in self.failing:
            raise RuntimeError(f"load failed for model '{name}'")
        return f"fp-{name}"


@pytest.fixture
def repo(tmp_path: Path) -> EncoderRepository:
    return EncoderRepository(tmp_path / "repo")


def poller(repo: EncoderRepository) -> VersionPoller:
    return VersionPoller(repo, [HeadEncoder(head())], make=make)


def test_served_name_is_its_own_model_and_undone_by_model_of() -> None:
    assert served_name(MODEL, 3) == "image_encoder.v3"
    assert model_of("image_encoder.v3") == MODEL
    assert model_of(MODEL) == MODEL
    assert model_of("text_encoder.v12") == "text_encoder"
    with pytest.raises(ValueError):
        served_name(MODEL, 0)
    with pytest.raises(ValueError):
        served_name("image_encoder.v3", 4)  # a served name is not a base model


def test_versions_start_at_2_and_go_above_every_existing_one(repo: EncoderRepository) -> None:
    assert repo.next_version(MODEL) == 2
    assert repo.versions(MODEL) == []
    assert repo.publish(MODEL, head(), parent=1, training={}).version == 2
    assert repo.publish(MODEL, head(1), parent=2, training={}, version=7).version == 7
    assert repo.next_version(MODEL) == 8
    assert [v.version for v in repo.versions(MODEL)] == [2, 7]
    assert repo.next_version("text_encoder") == 2  # numbered per model
    with pytest.raises(ValueError):
        repo.publish(MODEL, head(), parent=None, training={}, version=1)  # the built-in head


def test_publish_writes_the_layout_and_the_description(repo: EncoderRepository) -> None:
    training = {"window": ["2024-01-01T00:00", "2024-01-02T00:00"], "auc": 0.71, "examples": 5000}
    info = repo.publish(MODEL, head(3), parent=1, training=training)
    path = repo.root / MODEL / "2"
    assert info.path == path
    assert sorted(p.name for p in path.iterdir()) == [HEAD_FILE, VERSION_FILE]
    assert [p.name for p in (repo.root / MODEL).iterdir()] == ["2"]  # no temporary left
    written = json.loads((path / VERSION_FILE).read_text())
    assert written == {
        "model": MODEL,
        "version": 2,
        "parent": 1,
        "created_at": info.created_at,
        "served_name": "image_encoder.v2",
        "fingerprint": info.fingerprint,
        "training": training,
    }
    loaded, again = repo.load(MODEL, 2)
    assert again == info
    # the head takes the published number, so the served encoder reports it
    assert (loaded.version, loaded.kind, loaded.d_in, loaded.d_out) == (2, "random", 16, 4)
    np.testing.assert_array_equal(loaded.components, head(3).components)
    assert info.fingerprint == projection_fingerprint(loaded)
    assert repo.status(MODEL, 2) is None  # the server has not looked yet


def test_a_version_is_never_overwritten(repo: EncoderRepository) -> None:
    first = repo.publish(MODEL, head(1), parent=1, training={"run": 1})
    with pytest.raises(FileExistsError):
        repo.publish(MODEL, head(2), parent=1, training={"run": 2}, version=2)
    assert repo.load(MODEL, 2)[1] == first
    assert [p.name for p in (repo.root / MODEL).iterdir()] == ["2"]


def test_refused_before_anything_is_written(repo: EncoderRepository) -> None:
    with pytest.raises(TypeError):
        repo.publish(MODEL, head(), parent=1, training={"when": object()})
    with pytest.raises(ValueError):
        repo.publish("../evil", head(), parent=1, training={})
    assert repo.version_numbers(MODEL) == []


def test_other_entries_are_not_versions(repo: EncoderRepository) -> None:
    repo.publish(MODEL, head(), parent=1, training={})
    model_dir = repo.root / MODEL
    for name in (".publish-3-abc", "03", "notes", "\u00b2"):
        (model_dir / name).mkdir()
    (model_dir / "4").write_text("a file, not a directory")
    (repo.root / ".hidden").mkdir()
    assert repo.version_numbers(MODEL) == [2]
    assert repo.models() == [MODEL]


@pytest.mark.parametrize(
    "damage",
    ["garbage head", "truncated head", "missing head", "bad json", "head swapped", "wrong model"],
)
def test_a_damaged_version_is_refused_with_a_reason(repo: EncoderRepository, damage: str) -> None:
    info = repo.publish(MODEL, head(), parent=1, training={})
    path = info.path
    if damage == "garbage head":
        (path / HEAD_FILE).write_bytes(b"not an npz at all")
    elif damage == "truncated head":
        (path / HEAD_FILE).write_bytes((path / HEAD_FILE).read_bytes()[:200])
    elif damage == "missing head":
        (path / HEAD_FILE).unlink()
    elif damage == "bad json":
        (path / VERSION_FILE).write_text("{")
    elif damage == "head swapped":
        Projection.random(16, 4, seed=9, version=2).save(path / HEAD_FILE)
    else:
        data = json.loads((path / VERSION_FILE).read_text())
        (path / VERSION_FILE).write_text(json.dumps({**data, "model": "text_encoder"}))
    with pytest.raises(BadVersion, match=str(path)):
        repo.load(MODEL, 2)


def test_status_round_trip_and_unreadable_status(repo: EncoderRepository) -> None:
    repo.publish(MODEL, head(), parent=1, training={})
    before = repo.files_signature(MODEL, 2)
    repo.set_status(MODEL, 2, VersionStatus("failed", error="ValueError: no"))
    status = repo.status(MODEL, 2)
    assert status is not None and (status.state, status.error) == ("failed", "ValueError: no")
    assert status.at  # when
    assert repo.files_signature(MODEL, 2) == before  # status.json is not the version
    (repo.root / MODEL / "2" / STATUS_FILE).write_text("[]")
    assert repo.status(MODEL, 2) is None


def test_poller_serves_new_versions_once_and_records_ready(repo: EncoderRepository) -> None:
    versions = poller(repo)
    bind = RecordingBind()
    assert versions.poll(bind) == {}
    repo.publish(MODEL, head(1), parent=1, training={})
    repo.publish(MODEL, head(2), parent=2, training={})
    assert versions.poll(bind) == {"image_encoder.v2": 2, "image_encoder.v3": 3}
    assert versions.poll(bind) == {}  # served ones are never loaded again
    assert bind.calls == [("image_encoder.v2", 2), ("image_encoder.v3", 3)]
    status = repo.status(MODEL, 3)
    assert status is not None and status.state == "ready" and status.error == ""
    assert status.served_fingerprint == "fp-image_encoder.v3"
    assert status.load_s is not None and status.load_s >= 0


def test_bad_versions_fail_alone_and_are_retried_only_when_changed(
    repo: EncoderRepository,
) -> None:
    versions = poller(repo)
    bind = RecordingBind(failing=["image_encoder.v4"])
    repo.publish(MODEL, head(d_in=100), parent=1, training={})  # v2: other features
    repo.publish(MODEL, head(), parent=1, training={})  # v3: good
    garbage = repo.publish(MODEL, head(), parent=1, training={})  # v4: bind fails
    (repo.root / MODEL / "5").mkdir()  # v5: no files at all
    assert versions.poll(bind) == {"image_encoder.v3": 3}
    reasons = {v: repo.status(MODEL, v) for v in (2, 4, 5)}
    assert {v: s.state if s else None for v, s in reasons.items()} == dict.fromkeys(
        (2, 4, 5), "failed"
    )
    assert "projection expects 100 features" in str(reasons[2] and reasons[2].error)
    assert "load failed for model 'image_encoder.v4'" in str(reasons[4] and reasons[4].error)
    assert "version.json" in str(reasons[5] and reasons[5].error)

    assert versions.poll(bind) == {}  # unchanged: not tried again
    assert len(bind.calls) == 2
    bind.failing.clear()
    stat = (garbage.path / HEAD_FILE).stat()
    os.utime(garbage.path / HEAD_FILE, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert versions.poll(bind) == {"image_encoder.v4": 4}  # its files changed: tried again
    assert versions.served == {"image_encoder.v3": 3, "image_encoder.v4": 4}


def test_poller_looks_only_at_the_models_it_serves(repo: EncoderRepository) -> None:
    repo.publish("text_encoder", head(), parent=1, training={})
    report = repo.root / "reports" / "1733050000"  # a publisher's files beside the versions
    report.mkdir(parents=True)
    assert poller(repo).poll(RecordingBind()) == {}
    assert repo.status("text_encoder", 2) is None
    assert list(report.iterdir()) == []


def test_versions_a_base_encoder_cannot_carry_fail(repo: EncoderRepository) -> None:
    repo.publish(MODEL, head(), parent=1, training={})
    versions = VersionPoller(repo, [HeadEncoder(head())])  # the real make: only ImageEncoder
    assert versions.poll(RecordingBind()) == {}
    status = repo.status(MODEL, 2)
    assert status is not None and status.state == "failed" and "not served" in status.error


def test_an_unwritable_status_is_not_fatal(
    repo: EncoderRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.publish(MODEL, head(), parent=1, training={})

    def refuse(*_: object) -> None:
        raise PermissionError("read-only repository")

    monkeypatch.setattr(repo, "set_status", refuse)
    assert poller(repo).poll(RecordingBind()) == {"image_encoder.v2": 2}


def test_an_unreadable_repository_is_not_fatal(
    repo: EncoderRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.publish(MODEL, head(), parent=1, training={})
    versions = poller(repo)

    def lost(*_: object) -> list[int]:
        raise PermissionError("stale file handle")

    monkeypatch.setattr(repo, "version_numbers", lost)
    assert versions.poll(RecordingBind()) == {}
    monkeypatch.undo()
    assert versions.poll(RecordingBind()) == {"image_encoder.v2": 2}  # next poll: back


def test_image_versions_share_the_backbone() -> None:
    from encoder_server.serving.image_encoder import ImageEncoder

    base = ImageEncoder(input_size=64)
    version = version_encoder(base, Projection.random(1280, 8, seed=5, version=2))
    assert isinstance(version, ImageEncoder)
    assert version._model is base._model
    assert (version.version, version.dim, version.input_size) == (2, 8, 64)
    assert base.version == 1  # the base head is untouched
    with pytest.raises(ValueError, match="1280"):
        version_encoder(base, Projection.random(100, 8, version=3))
    with pytest.raises(ValueError, match="not served"):
        version_encoder(HeadEncoder(head()), head())


def test_export_writes_loadable_versions_as_extra_models(
    repo: EncoderRepository, tmp_path: Path
) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from encoder_server.serving.export import export_versions
    from encoder_server.serving.image_encoder import ImageEncoder
    from encoder_server.serving.serve import head_fingerprint
    from encoder_server.serving.triton_model import build_encoder

    repo.publish(MODEL, Projection.random(1280, 8, seed=4), parent=1, training={})
    repo.publish(MODEL, Projection.random(100, 8), parent=1, training={})  # does not fit: left out
    base = ImageEncoder(input_size=64)
    written = export_versions(tmp_path / "export", repo, [base])
    assert written == [tmp_path / "export" / "image_encoder.v2" / "2"]
    config = text_format.Parse(
        (tmp_path / "export" / "image_encoder.v2" / "config.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )
    assert config.name == "image_encoder.v2"
    rebuilt = build_encoder(written[0])
    assert (rebuilt.version, rebuilt.dim) == (2, 8)
    served = version_encoder(base, repo.load(MODEL, 2)[0])
    assert config.parameters["bertctr_fingerprint"].string_value == head_fingerprint(served)
    assert head_fingerprint(rebuilt) == head_fingerprint(served)
