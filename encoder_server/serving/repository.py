"""Encoder versions on disk: what a fine-tuning job publishes and a running server serves.

Why a directory and not an API: the job that trains a new head and the
server that serves it run on their own schedules, and either may be down
while the other works. The file system is the whole contract between them:
the job needs no server to publish, and a server started later (or
restarted) finds every version where the job left it.

Layout::

    <root>/<model>/<version>/head.npz      the head, written by Projection.save
    <root>/<model>/<version>/version.json  what it is (VersionInfo)
    <root>/<model>/<version>/status.json   what the server made of it (VersionStatus)

* Publishing is atomic: the head and ``version.json`` are written into a
  hidden temporary directory beside the versions and renamed into place, so
  a server scanning the repository never sees half a version (only
  directories named by a number are versions).
* A version is never overwritten: a number names one head for ever. The
  served name (:func:`~encoder_server.base.served_name`) and the embedding
  cache keys are derived from it, so reusing a number would hand clients
  vectors cached for another head.
* Version 1 is the built-in random head that ``image_encoder`` serves, so
  the first published version is 2.
* ``status.json`` is the only file the server writes: ``ready`` once the
  version answers, or ``failed`` with the error. It is not part of the
  version's identity (:meth:`EncoderRepository.files_signature` leaves it out).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from encoder_server.base import served_name
from encoder_server.projection import Projection

__all__ = [
    "FIRST_VERSION",
    "HEAD_FILE",
    "STATUS_FILE",
    "VERSION_FILE",
    "BadVersion",
    "EncoderRepository",
    "Signature",
    "VersionInfo",
    "VersionStatus",
    "projection_fingerprint",
]

log = logging.getLogger(__name__)

HEAD_FILE = "head.npz"
VERSION_FILE = "version.json"
STATUS_FILE = "status.json"
#: version 1 is the built-in random head; the repository starts above it
FIRST_VERSION = 2

#: a model directory: a Triton model name that is neither hidden nor a served version
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")

#: a version directory: a number without leading zeros (temporary ones are hidden)
_VERSION_DIR = re.compile(r"^[1-9][0-9]*$")

State = Literal["ready", "failed"]
#: (file name, size, mtime in ns) of each file that defines a version
Signature = tuple[tuple[str, int, int], ...]


class BadVersion(ValueError):
    """A version directory that cannot be read as a head and its description."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def projection_fingerprint(projection: Projection) -> str:
    """16 hex digits naming a head's arrays, version, kind and feature set.

    Recorded in ``version.json`` and checked on :meth:`EncoderRepository.load`,
    so a head file replaced under a published version is refused rather than
    served under the old number. (The served model's own
    ``bertctr_fingerprint`` also covers the backbone; ``status.json`` reports it.)
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in (projection.kind, projection.features, str(projection.version)):
        digest.update(part.encode() + b"\0")
    for array in (projection.mean, projection.components):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class VersionInfo:
    """What ``version.json`` says about one published version."""

    model: str
    version: int
    #: the version it was fine-tuned from (None: not derived from a served one)
    parent: int | None
    #: ISO 8601, UTC
    created_at: str
    #: the Triton model name it is served under
    served_name: str
    #: :func:`projection_fingerprint` of its head
    fingerprint: str
    #: whatever the publisher recorded: window, metrics, examples...
    training: Mapping[str, Any] = field(default_factory=dict)
    #: its directory (not written to the file)
    path: Path = field(default=Path(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "parent": self.parent,
            "created_at": self.created_at,
            "served_name": self.served_name,
            "fingerprint": self.fingerprint,
            "training": dict(self.training),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path) -> VersionInfo:
        """Parse ``version.json``; :class:`BadVersion` if a field is missing or mistyped."""
        try:
            parent = data["parent"]
            info = cls(
                model=str(data["model"]),
                version=int(data["version"]),
                parent=None if parent is None else int(parent),
                created_at=str(data["created_at"]),
                served_name=str(data["served_name"]),
                fingerprint=str(data["fingerprint"]),
                training=dict(data.get("training") or {}),
                path=path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadVersion(f"{path / VERSION_FILE}: bad field: {exc!r}") from exc
        return info


@dataclass(frozen=True)
class VersionStatus:
    """What the server made of a version (``status.json``)."""

    state: State
    #: why it failed; empty when ready
    error: str = ""
    #: ISO 8601, UTC
    at: str = field(default_factory=_now)
    #: the served model's ``bertctr_fingerprint`` (what clients' cache tags carry)
    served_fingerprint: str = ""
    #: seconds from noticing the version to its answering
    load_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "at": self.at,
            "served_fingerprint": self.served_fingerprint,
            "load_s": self.load_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionStatus:
        state = data.get("state")
        if state not in ("ready", "failed"):
            raise ValueError(f"unknown state {state!r}")
        load_s = data.get("load_s")
        return cls(
            state=state,
            error=str(data.get("error") or ""),
            at=str(data.get("at") or ""),
            served_fingerprint=str(data.get("served_fingerprint") or ""),
            load_s=None if load_s is None else float(load_s),
        )


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename never publishes empty files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    _fsync(tmp)
    os.replace(tmp, path)


class EncoderRepository:
    """Published encoder versions under ``root`` (see the module docstring).

    Safe to share between one publisher and any number of readers: every
    write is a rename. Two publishers racing for one number: one wins, the
    other gets :class:`FileExistsError` and can publish again.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def version_dir(self, model: str, version: int) -> Path:
        return self.root / _check_model(model) / str(version)

    def models(self) -> list[str]:
        """Model directories present (hidden and badly named ones are skipped)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _is_model_name(p.name))

    def version_numbers(self, model: str) -> list[int]:
        """Published version numbers of ``model``, readable or not, ascending."""
        model_dir = self.root / _check_model(model)
        if not model_dir.is_dir():
            return []
        return sorted(
            int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name)
        )

    def next_version(self, model: str) -> int:
        """The number the next :meth:`publish` takes: above every existing one, at least 2."""
        return max([FIRST_VERSION - 1, *self.version_numbers(model)]) + 1

    def publish(
        self,
        model: str,
        projection: Projection,
        parent: int | None,
        training: Mapping[str, Any],
        *,
        version: int | None = None,
    ) -> VersionInfo:
        """Publish ``projection`` as a new version of ``model``; return what was written.

        The head's own ``version`` is replaced by the published number, so the
        served encoder reports it. ``training`` must be JSON-serialisable.

        Raises
        ------
        FileExistsError
            If the version exists (never overwritten).
        TypeError
            If ``training`` is not JSON.
        """
        number = self.next_version(model) if version is None else version
        if number < FIRST_VERSION:
            raise ValueError(f"published versions start at {FIRST_VERSION}, got {number}")
        head = replace(projection, version=number)
        info = VersionInfo(
            model=model,
            version=number,
            parent=parent,
            created_at=_now(),
            served_name=served_name(model, number),
            fingerprint=projection_fingerprint(head),
            training=dict(training),
            path=self.version_dir(model, number),
        )
        json.dumps(info.to_json())  # TypeError now, before anything is written
        self._write_version(info, head)
        log.info("published %s v%d (%s) at %s", model, number, info.fingerprint, info.path)
        return info

    def _write_version(self, info: VersionInfo, head: Projection) -> None:
        """Write into a hidden temporary directory, then rename it to the version's."""
        final = info.path
        if final.exists():
            raise FileExistsError(f"{final}: version {info.version} exists")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".publish-{info.version}-", dir=final.parent))
        try:
            head.save(tmp / HEAD_FILE)
            _fsync(tmp / HEAD_FILE)
            _write_json(tmp / VERSION_FILE, info.to_json())
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide it from a server run as another user
            _fsync(tmp)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExistsError(f"{final}: version {info.version} exists") from exc
                raise
            _fsync(final.parent)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def info(self, model: str, version: int) -> VersionInfo:
        """Read ``version.json``; :class:`BadVersion` if it is missing, not JSON or inconsistent."""
        path = self.version_dir(model, version)
        try:
            data = json.loads((path / VERSION_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise BadVersion(f"{path / VERSION_FILE}: {exc}") from exc
        if not isinstance(data, dict):
            raise BadVersion(f"{path / VERSION_FILE}: not a JSON object")
        info = VersionInfo.from_json(data, path)
        if (info.model, info.version) != (model, version):
            raise BadVersion(f"{path}: version.json names {info.model} v{info.version}")
        return info

    def versions(self, model: str) -> list[VersionInfo]:
        """Every readable version of ``model``, ascending; unreadable ones are logged, skipped."""
        out = []
        for number in self.version_numbers(model):
            try:
                out.append(self.info(model, number))
            except BadVersion as exc:
                log.warning("skipping %s v%d: %s", model, number, exc)
        return out

    def load(self, model: str, version: int) -> tuple[Projection, VersionInfo]:
        """The head and description of one version, checked against each other.

        Raises
        ------
        BadVersion
            If either file is missing or unreadable, or the head is not the
            one published (its version or fingerprint differs).
        """
        info = self.info(model, version)
        try:
            head = Projection.load(info.path / HEAD_FILE)
        except Exception as exc:  # np.load raises many kinds (BadZipFile, EOFError, OSError...)
            raise BadVersion(f"{info.path / HEAD_FILE}: {type(exc).__name__}: {exc}") from exc
        if head.version != version:
            raise BadVersion(f"{info.path / HEAD_FILE}: head says version {head.version}")
        if projection_fingerprint(head) != info.fingerprint:
            raise BadVersion(f"{info.path / HEAD_FILE}: not the head published (fingerprint)")
        return head, info

    def status(self, model: str, version: int) -> VersionStatus | None:
        """The server's verdict on a version; None before it has tried (or if unreadable)."""
        path = self.version_dir(model, version) / STATUS_FILE
        try:
            return VersionStatus.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("unreadable %s: %s", path, exc)
            return None

    def set_status(self, model: str, version: int, status: VersionStatus) -> None:
        """Write ``status.json`` atomically (the server's side of the contract)."""
        _write_json(self.version_dir(model, version) / STATUS_FILE, status.to_json())

    def files_signature(self, model: str, version: int) -> Signature:
        """Size and mtime of the files that define a version (not ``status.json``).

        The server retries a failed version only when this changes.
        """
        path = self.version_dir(model, version)
        out = []
        for name in (HEAD_FILE, VERSION_FILE):
            try:
                stat = (path / name).stat()
            except FileNotFoundError:
                out.append((name, -1, -1))
            else:
                out.append((name, stat.st_size, stat.st_mtime_ns))
        return tuple(out)


def _is_model_name(name: str) -> bool:
    try:
        _check_model(name)
    except ValueError:
        return False
    return True


def _check_model(model: str) -> str:
    """``model`` if it can be a model directory (and a served name's base)."""
    if not _MODEL_NAME.match(model):
        raise ValueError(f"bad model name {model!r}")
    served_name(model, FIRST_VERSION)  # refuses a name that is itself a served version
    return model
