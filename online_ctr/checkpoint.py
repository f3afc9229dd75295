"""Signed checkpoints of a learner, tied to the input offsets they cover.

A checkpoint file is ``HMAC-SHA256(key, payload) || payload``. The payload
is two pickles back to back: the header ``(FORMAT, {"created_at": ...,
"offsets": ..., "metadata": ...})``, then the learner. Why each part:

* offsets (``{"labelled:0": 123}``) travel in the same file as the model
  they produced, so a restarted worker resumes exactly after the last
  example the model learned — never learns one twice, never skips one;
* unpickling runs code, so :func:`load_checkpoint` verifies the HMAC (in
  constant time) before it unpickles, and refuses a file signed with another
  key or changed by one byte (:class:`CheckpointError`);
* :data:`FORMAT` names the payload layout; a checkpoint of an unknown
  layout is refused cleanly instead of failing later inside the learner;
* the header is its own pickle, ahead of the learner, so a reader can list
  checkpoints' offsets and metadata (model name, encoder versions: what a
  scoring API or a champion/challenger comparison picks by) without
  unpickling models of tens of MB each;
* files of the previous layout, :data:`LEGACY_FORMAT` (one pickle
  ``(LEGACY_FORMAT, learner, offsets)``, no metadata), still load: a worker
  upgraded in place resumes from them, with empty metadata and the creation
  time its file name records. (A worker of that older release refuses the
  new layout and starts a fresh model, so do not downgrade across it.)
* a class pickled under a module path it has since left is found at its new
  home (:data:`MOVED`), so reorganising the package never strands a model;
* files are written to a temporary name, fsynced and renamed
  (``os.replace``), so a crash never leaves a half-written file that looks
  valid, and names sort by creation time for :func:`latest_checkpoint`
  (a name is never older than the newest already there, even if the wall
  clock steps back).

:class:`online_ctr.store.FileModelStore` is this format behind the
:class:`~online_ctr.store.ModelStore` port; new readers should use the port.

>>> import tempfile
>>> from pathlib import Path
>>> directory = Path(tempfile.mkdtemp())
>>> path = save_checkpoint(directory, {"a": "learner"}, {"labelled:0": 7}, key=b"k")
>>> load_checkpoint(path, key=b"k")
({'a': 'learner'}, {'labelled:0': 7})
>>> latest_checkpoint(directory) == path
True
>>> path = save_checkpoint(directory, "m", {}, key=b"k", metadata={"model": "ftrl"})
>>> read_checkpoint(path, key=b"k", learner=False)[0].metadata
{'model': 'ftrl'}
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import logging
import os
import pickle
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "LEGACY_FORMAT",
    "MOVED",
    "PATTERN",
    "CheckpointError",
    "CheckpointHeader",
    "decode_checkpoint",
    "encode_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

SIG_BYTES = 32
PATTERN = "ckpt-*.bin"
FORMAT = "bertctr-learner/3"
#: the layout before metadata: read, never written
LEGACY_FORMAT = "bertctr-learner/2"
#: the names :func:`save_checkpoint` gives: nanoseconds since the epoch
_NAME = re.compile(r"ckpt-(\d{20})\.bin")


#: module paths of pickled classes that moved, old -> new (the rooms of online_ctr)
MOVED = {
    "online_ctr.protocol": "online_ctr.models.protocol",
    "online_ctr.ftrl": "online_ctr.models.ftrl",
    "online_ctr.bayes": "online_ctr.models.bayes",
    "online_ctr.models": "online_ctr.models.registry",
    "online_ctr.duel": "online_ctr.promotion.duel",
    "online_ctr.sequential": "online_ctr.promotion.sequential",
    "online_ctr.weight_map": "online_ctr.promotion.weight_map",
}


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that finds a moved class at its new module (:data:`MOVED`)."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get(module, module), name)


def _load(stream: io.BytesIO) -> Any:
    return _Unpickler(stream).load()


class CheckpointError(ValueError):
    """A checkpoint that is not ours, was changed since it was written, or is of another format."""


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint says about its learner, readable without unpickling the learner.

    Attributes
    ----------
    created_at
        Unix seconds when it was saved (for a :data:`LEGACY_FORMAT` file:
        the time in its name, else its modification time).
    offsets
        The last input offset learned, per ``"topic:partition"``.
    metadata
        What the writer said about the model (``{}`` for a legacy file).
    """

    created_at: float
    offsets: dict[str, int]
    metadata: dict[str, Any]


def _sign(key: bytes, *parts: bytes | memoryview) -> bytes:
    if not key:
        raise ValueError("a checkpoint key must not be empty")
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def encode_checkpoint(
    learner: Any,
    offsets: Mapping[str, int],
    key: bytes,
    metadata: Mapping[str, Any] | None = None,
    created_at: float | None = None,
) -> bytes:
    """The signed bytes of one checkpoint (what a checkpoint file holds).

    Pickling copies: later changes to ``learner``, ``offsets`` or
    ``metadata`` do not reach the bytes. Exposed so that stores other than
    files (:class:`~online_ctr.store.MemoryModelStore`) keep the same format
    and the same tamper check.

    Raises
    ------
    ValueError
        If ``key`` is empty.
    pickle.PicklingError, AttributeError, TypeError
        If the learner or the metadata cannot be pickled.
    """
    if not key:
        raise ValueError("a checkpoint key must not be empty")
    header = {
        "created_at": time.time() if created_at is None else float(created_at),
        "offsets": dict(offsets),
        "metadata": dict(metadata or {}),
    }
    head = pickle.dumps((FORMAT, header), protocol=pickle.HIGHEST_PROTOCOL)
    body = pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL)
    return b"".join((_sign(key, head, body), head, body))


def decode_checkpoint(
    data: bytes,
    key: bytes,
    *,
    learner: bool = True,
    source: str = "checkpoint",
    created_at: float = 0.0,
) -> tuple[CheckpointHeader, Any]:
    """Verify, then unpickle ``(header, learner)`` from :func:`encode_checkpoint`'s bytes.

    Parameters
    ----------
    learner
        ``False``: unpickle only the header and return ``None`` for the
        learner (a :data:`LEGACY_FORMAT` payload is one pickle, so it is
        unpickled whole anyway).
    source
        Names the checkpoint in errors.
    created_at
        The creation time to report for a :data:`LEGACY_FORMAT` payload,
        which does not record one.

    Raises
    ------
    CheckpointError
        If the signature does not verify with ``key`` (then nothing is
        unpickled), the layout is neither :data:`FORMAT` nor
        :data:`LEGACY_FORMAT`, or the signed payload no longer unpickles
        (a class it needs was renamed since).
    """
    signature = data[:SIG_BYTES]
    payload = memoryview(data)[SIG_BYTES:]
    if len(signature) != SIG_BYTES or not hmac.compare_digest(signature, _sign(key, payload)):
        raise CheckpointError(f"{source}: signature does not verify")
    stream = io.BytesIO(data)  # shares the bytes, no copy
    stream.seek(SIG_BYTES)
    try:
        # safe: the payload is signed with our key. One Unpickler per pickle:
        # an Unpickler keeps its memo across load() calls, which would shift
        # the memo indices of the second pickle.
        content = _load(stream)
        if (
            isinstance(content, tuple)
            and len(content) == 2
            and content[0] == FORMAT
            and isinstance(content[1], dict)
        ):
            fields = content[1]
            header = CheckpointHeader(
                created_at=float(fields["created_at"]),
                offsets=dict(fields["offsets"]),
                metadata=dict(fields["metadata"]),
            )
            return header, _load(stream) if learner else None
        if isinstance(content, tuple) and len(content) == 3 and content[0] == LEGACY_FORMAT:
            _, model, offsets = content
            return CheckpointHeader(created_at, dict(offsets), {}), model if learner else None
    except MemoryError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{source}: signed, but does not unpickle: {exc!r}") from exc
    raise CheckpointError(f"{source}: not a {FORMAT} or {LEGACY_FORMAT} checkpoint")


def save_checkpoint(
    directory: Path,
    learner: Any,
    offsets: Mapping[str, int],
    key: bytes,
    keep: int = 3,
    metadata: Mapping[str, Any] | None = None,
    created_at: float | None = None,
) -> Path:
    """Write a signed checkpoint atomically; keep only the newest ``keep`` files.

    Parameters
    ----------
    directory
        Created if missing.
    learner
        Anything picklable; normally a :class:`~online_ctr.learner.Learner`.
    offsets
        The last input offset learned, per ``"topic:partition"``.
    key
        The HMAC key (non-empty); the same key must be given to load it.
    keep
        How many checkpoint files to keep (older ones are deleted).
    metadata
        Saved in the signed header (``{}`` if not given); must pickle.
    created_at
        Unix seconds to record (default: now).
    """
    data = encode_checkpoint(learner, offsets, key, metadata=metadata, created_at=created_at)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{_next_stamp(directory):020d}.bin"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-ckpt-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    for old in sorted(directory.glob(PATTERN))[:-keep]:
        old.unlink(missing_ok=True)
    log.debug("checkpoint %s (%d bytes) covers %s", path, len(data), dict(offsets))
    return path


def _next_stamp(directory: Path) -> int:
    """Now in nanoseconds, but later than the newest name already there.

    Names must sort by creation for :func:`latest_checkpoint`; a wall clock
    stepped back (NTP) must not make the newest checkpoint look old, and two
    saves within one clock tick must not share a name.
    """
    stamp = time.time_ns()
    for path in reversed(list_checkpoints(directory)):
        match = _NAME.fullmatch(path.name)
        if match:
            return max(stamp, int(match.group(1)) + 1)
    return stamp


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every OS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_checkpoint(
    path: Path, key: bytes, *, learner: bool = True
) -> tuple[CheckpointHeader, Any]:
    """Verify, then load ``(header, learner)`` from a file of either layout.

    ``learner=False`` skips unpickling the learner (see
    :func:`decode_checkpoint`, which raises :class:`CheckpointError`).
    ``FileNotFoundError`` passes through: a reader may race the pruning of
    an old file.
    """
    data = path.read_bytes()
    return decode_checkpoint(
        data, key, learner=learner, source=str(path), created_at=_created_at(path)
    )


def _created_at(path: Path) -> float:
    """When a file was saved: the stamp in its name, else its modification time."""
    match = _NAME.fullmatch(path.name)
    if match:
        return int(match.group(1)) / 1e9
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def load_checkpoint(path: Path, key: bytes) -> tuple[Any, dict[str, int]]:
    """Verify, then load ``(learner, offsets)``.

    Kept for callers that predate :mod:`online_ctr.store`; reads both
    layouts and drops the metadata.

    Raises
    ------
    CheckpointError
        If the signature does not verify with ``key`` or the format is
        unknown; nothing is unpickled when the signature fails.
    """
    header, learner = read_checkpoint(path, key)
    return learner, dict(header.offsets)


def list_checkpoints(directory: Path) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first (empty if it is missing)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(PATTERN))


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint file in ``directory``, or ``None`` if there is none."""
    found = list_checkpoints(directory)
    return found[-1] if found else None
