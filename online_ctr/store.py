"""The model store: the one place "the current model" is saved to and read from.

The learner agent used to write checkpoint files into a directory that only
its own worker read. The scoring API, a champion/challenger comparison of
encoders and several learning workers all need the current model from
outside that process, so they depend on the :class:`ModelStore` port rather
than on a directory layout: a shared store (object storage, a database) can
then replace the file one without touching them.

A *snapshot* is a learner together with the input offsets it covers (the
last offset learned, per ``"topic:partition"``: a restarted learner resumes
right after them) and free-form metadata (model name, examples learned,
encoder versions: what a reader chooses a model by). Snapshots are signed
and verified before anything is unpickled, since unpickling runs code.

Every adapter keeps this contract (``tests/unit/online_ctr/test_store.py`` runs
it against each):

* :meth:`~ModelStore.save` copies: changing the learner, the offsets or the
  metadata after it returns does not change the snapshot; it returns the
  snapshot's :class:`SnapshotInfo`, whose name is unique in the store;
* :meth:`~ModelStore.list` gives the snapshots that verify, **oldest first**
  (the newest is last, as names sort);
* :meth:`~ModelStore.latest` loads the newest snapshot that verifies; one that
  does not (changed since it was written, signed with another key, no longer
  unpicklable) is skipped with a warning and the next older one is tried, so
  one bad write costs the progress since the snapshot before it, not the
  whole model. ``None`` when there is no usable snapshot;
* :meth:`~ModelStore.newest` names the newest snapshot without reading it
  (``None`` when empty), for pollers that load only on a change;
* :meth:`~ModelStore.load` loads one snapshot by name; an unknown name raises
  :class:`SnapshotNotFound` (a :class:`KeyError`), a snapshot that does not
  verify raises :class:`~online_ctr.checkpoint.CheckpointError`;
* only the newest ``keep`` snapshots are kept (the store prunes on save).

The methods are synchronous: an asyncio caller runs them in a thread
(``asyncio.to_thread``), as the learner agent does, since saving a model of
tens of MB is CPU and disk work either way.

Adapters: :class:`FileModelStore`, the signed checkpoint files of
:mod:`online_ctr.checkpoint` (files written before metadata existed still
load, with empty metadata), and :class:`MemoryModelStore`, an in-process
fake for tests that stores the same signed bytes.

>>> store = MemoryModelStore()
>>> info = store.save({"w": 1.0}, {"labelled:0": 41}, {"model": "ftrl"})
>>> snapshot = store.latest()
>>> snapshot.learner, dict(snapshot.offsets), dict(snapshot.metadata)
({'w': 1.0}, {'labelled:0': 41}, {'model': 'ftrl'})
>>> store.load(info.name).name == info.name
True
"""

from __future__ import annotations

import builtins
import copy
import fnmatch
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from online_ctr.checkpoint import (
    PATTERN,
    CheckpointError,
    CheckpointHeader,
    decode_checkpoint,
    encode_checkpoint,
    list_checkpoints,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "DEFAULT_KEEP",
    "CheckpointError",
    "FileModelStore",
    "MemoryModelStore",
    "ModelStore",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotNotFound",
]

log = logging.getLogger(__name__)

#: snapshots kept by default: a bad newest one still leaves older ones to fall back to
DEFAULT_KEEP = 3
#: how often :meth:`FileModelStore.latest` lists again when a save pruned what it listed
_RELIST_ATTEMPTS = 3


@dataclass(frozen=True)
class SnapshotInfo:
    """What a store knows of one snapshot without loading its learner.

    Attributes
    ----------
    name
        Unique in its store; give it to :meth:`ModelStore.load`. Opaque to
        callers (a file name for :class:`FileModelStore`).
    created_at
        Unix seconds when it was saved.
    offsets
        The last input offset the learner learned, per ``"topic:partition"``.
    metadata
        What the writer said about the model; ``{}`` for a checkpoint file
        written before metadata existed.
    """

    name: str
    created_at: float
    offsets: Mapping[str, int]
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class Snapshot(SnapshotInfo):
    """A loaded snapshot: its :class:`SnapshotInfo` and the learner itself.

    The learner is a fresh copy, the caller's to change; it is left out of
    ``repr`` and ``==`` (a model of tens of MB is neither printable nor
    comparable).
    """

    learner: Any = field(repr=False, compare=False)

    @property
    def info(self) -> SnapshotInfo:
        """The snapshot without its learner."""
        return SnapshotInfo(self.name, self.created_at, self.offsets, self.metadata)


class SnapshotNotFound(KeyError):
    """No snapshot of that name in the store (never saved, pruned, or not a snapshot name)."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(name)
        self.message = f"no snapshot named {name!r} in {where}"

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument, not a sentence
        return self.message


@runtime_checkable
class ModelStore(Protocol):
    """Where learners are saved as signed snapshots and read back (see the module doc)."""

    def save(
        self,
        learner: Any,
        offsets: Mapping[str, int],
        metadata: Mapping[str, Any] | None = None,
    ) -> SnapshotInfo:
        """Save a signed snapshot of ``learner`` covering ``offsets``; prune old ones.

        Parameters
        ----------
        learner
            Anything picklable; normally a :class:`~online_ctr.learner.Learner`.
        offsets
            The last input offset learned, per ``"topic:partition"``.
        metadata
            Kept with the snapshot (``{}`` if not given). Keep values to
            JSON types (str, numbers, lists, dicts) so that any reader, not
            only Python, can show them; anything picklable round-trips.
        """
        ...

    def list(self) -> builtins.list[SnapshotInfo]:
        """The snapshots that verify, oldest first (newest last)."""
        ...

    def latest(self) -> Snapshot | None:
        """The newest snapshot that verifies, falling back past bad ones; ``None`` if none."""
        ...

    def newest(self) -> str | None:
        """The name of the newest snapshot, unverified and cheap: for pollers.

        A reader that serves the model (the scoring API) polls this and loads
        only when it changes; ``None`` when the store is empty.
        """
        ...

    def load(self, name: str) -> Snapshot:
        """The snapshot called ``name``.

        Raises
        ------
        SnapshotNotFound
            If there is none of that name.
        CheckpointError
            If it does not verify.
        """
        ...


def _snapshot(name: str, header: CheckpointHeader, learner: Any) -> Snapshot:
    return Snapshot(name, header.created_at, header.offsets, header.metadata, learner)


#: reads one stored snapshot whole: ``(header, learner)``, or raises :class:`CheckpointError`
_Reader = Callable[[], tuple[CheckpointHeader, Any]]


def _newest_that_verifies(newest_first: Iterable[tuple[str, _Reader]]) -> Snapshot | None:
    """The fallback rule of :meth:`ModelStore.latest`, for every adapter.

    Reads the snapshots newest first and returns the first that verifies; one
    that does not is skipped with a warning, so one bad write costs the
    progress since the snapshot before it. Anything else a reader raises
    (a file pruned while read) passes through to the adapter.
    """
    for name, read in newest_first:
        try:
            header, learner = read()
        except CheckpointError as exc:
            log.warning("snapshot %s unusable, trying an older one: %s", name, exc)
            continue
        return _snapshot(name, header, learner)
    return None


def _listed(name: str, header: CheckpointHeader) -> SnapshotInfo:
    return SnapshotInfo(name, header.created_at, header.offsets, header.metadata)


def _info(
    name: str, created_at: float, offsets: Mapping[str, int], metadata: Mapping[str, Any] | None
) -> SnapshotInfo:
    """The info of a snapshot just saved, copied so the caller's later changes don't show."""
    return SnapshotInfo(name, created_at, dict(offsets), copy.deepcopy(dict(metadata or {})))


def _check(secret: bytes, keep: int) -> None:
    if not secret:
        raise ValueError("a model store secret must not be empty")
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")


class FileModelStore:
    """Snapshots as the signed checkpoint files of :mod:`online_ctr.checkpoint`.

    A snapshot's name is its file name (``ckpt-<nanoseconds>.bin``); files are
    written atomically, so readers in other processes may list and load while
    a learner saves. Files written before metadata existed load with empty
    metadata.

    Parameters
    ----------
    directory
        Created on the first save.
    secret
        The HMAC key (non-empty); readers need the same one.
    keep
        How many snapshot files to keep.
    """

    def __init__(self, directory: Path | str, secret: bytes, keep: int = DEFAULT_KEEP) -> None:
        _check(secret, keep)
        self.directory = Path(directory)
        self.keep = keep
        self._secret = secret

    def __repr__(self) -> str:
        return f"FileModelStore({str(self.directory)!r}, keep={self.keep})"

    def save(
        self,
        learner: Any,
        offsets: Mapping[str, int],
        metadata: Mapping[str, Any] | None = None,
    ) -> SnapshotInfo:
        """See :meth:`ModelStore.save`."""
        created_at = time.time()
        path = save_checkpoint(
            self.directory,
            learner,
            offsets,
            self._secret,
            keep=self.keep,
            metadata=metadata,
            created_at=created_at,
        )
        return _info(path.name, created_at, offsets, metadata)

    def list(self) -> builtins.list[SnapshotInfo]:
        """See :meth:`ModelStore.list`.

        Each file is read whole to verify its signature, but only its header is
        unpickled (a file of the layout before metadata is unpickled whole).
        """
        found = []
        for path in list_checkpoints(self.directory):
            try:
                header, _ = read_checkpoint(path, self._secret, learner=False)
            except FileNotFoundError:
                continue  # pruned by a save since we listed
            except CheckpointError as exc:
                log.warning("not listing snapshot %s: %s", path, exc)
                continue
            found.append(_listed(path.name, header))
        return found

    def latest(self) -> Snapshot | None:
        """See :meth:`ModelStore.latest`."""
        for _ in range(_RELIST_ATTEMPTS):
            newest_first = reversed(list_checkpoints(self.directory))
            try:
                return _newest_that_verifies(
                    (path.name, functools.partial(read_checkpoint, path, self._secret))
                    for path in newest_first
                )
            except FileNotFoundError:
                continue  # a save pruned one, so newer ones exist: list again
        log.warning("snapshots in %s kept vanishing while read; none loaded", self.directory)
        return None

    def newest(self) -> str | None:
        """See :meth:`ModelStore.newest`."""
        found = list_checkpoints(self.directory)
        return found[-1].name if found else None

    def load(self, name: str) -> Snapshot:
        """See :meth:`ModelStore.load`."""
        # only plain snapshot file names: a name must not reach outside the directory
        if os.path.basename(name) != name or not fnmatch.fnmatchcase(name, PATTERN):
            raise SnapshotNotFound(name, str(self.directory))
        path = self.directory / name
        try:
            header, learner = read_checkpoint(path, self._secret)
        except FileNotFoundError:
            raise SnapshotNotFound(name, str(self.directory)) from None
        return _snapshot(name, header, learner)


class MemoryModelStore:
    """Snapshots kept in this process: the fake :class:`ModelStore` for tests.

    It stores the same signed bytes as a checkpoint file, so it copies on
    save and on load (a caller changing the learner after saving, or the
    learner it loaded, never changes the stored snapshot) and refuses a
    snapshot changed behind its back (:meth:`tamper`). Thread-safe.

    Parameters
    ----------
    secret
        The HMAC key; a random one by default (nothing outside this process
        reads these snapshots).
    keep
        How many snapshots to keep.
    """

    def __init__(self, secret: bytes | None = None, keep: int = DEFAULT_KEEP) -> None:
        self._secret = os.urandom(32) if secret is None else secret
        _check(self._secret, keep)
        self.keep = keep
        #: name -> signed bytes, oldest first (insertion order)
        self._blobs: dict[str, bytes] = {}
        self._saved = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryModelStore({len(self._blobs)} snapshots, keep={self.keep})"

    def save(
        self,
        learner: Any,
        offsets: Mapping[str, int],
        metadata: Mapping[str, Any] | None = None,
    ) -> SnapshotInfo:
        """See :meth:`ModelStore.save`."""
        created_at = time.time()
        data = encode_checkpoint(
            learner, offsets, self._secret, metadata=metadata, created_at=created_at
        )
        with self._lock:
            self._saved += 1
            name = f"mem-{self._saved:020d}"
            self._blobs[name] = data
            for old in builtins.list(self._blobs)[: -self.keep]:
                del self._blobs[old]
        return _info(name, created_at, offsets, metadata)

    def list(self) -> builtins.list[SnapshotInfo]:
        """See :meth:`ModelStore.list`."""
        with self._lock:
            blobs = builtins.list(self._blobs.items())
        found = []
        for name, data in blobs:
            try:
                header, _ = decode_checkpoint(data, self._secret, learner=False, source=name)
            except CheckpointError as exc:
                log.warning("not listing snapshot %s: %s", name, exc)
                continue
            found.append(_listed(name, header))
        return found

    def latest(self) -> Snapshot | None:
        """See :meth:`ModelStore.latest`."""
        with self._lock:
            blobs = builtins.list(self._blobs.items())
        return _newest_that_verifies(
            (name, functools.partial(decode_checkpoint, data, self._secret, source=name))
            for name, data in reversed(blobs)
        )

    def newest(self) -> str | None:
        """See :meth:`ModelStore.newest`."""
        with self._lock:
            return next(reversed(self._blobs), None)

    def load(self, name: str) -> Snapshot:
        """See :meth:`ModelStore.load`."""
        with self._lock:
            data = self._blobs.get(name)
        if data is None:
            raise SnapshotNotFound(name, repr(self))
        header, learner = decode_checkpoint(data, self._secret, source=name)
        return _snapshot(name, header, learner)

    def tamper(self, name: str) -> None:
        """Flip one byte of a stored snapshot, as a bad disk or a hostile writer would.

        For tests of the tamper check; raises :class:`SnapshotNotFound`.
        """
        with self._lock:
            if name not in self._blobs:
                raise SnapshotNotFound(name, repr(self))
            data = bytearray(self._blobs[name])
            data[-1] ^= 0xFF
            self._blobs[name] = bytes(data)
