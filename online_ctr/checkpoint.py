"""Signed checkpoints of a learner, tied to the input offsets they cover.

A checkpoint file is ``HMAC-SHA256(key, payload) || payload``, the payload
the pickled ``(FORMAT, learner, offsets)``. Why each part:

* offsets (``{"labelled:0": 123}``) travel in the same file as the model
  they produced, so a restarted worker resumes exactly after the last
  example the model learned — never learns one twice, never skips one;
* unpickling runs code, so :func:`load_checkpoint` verifies the HMAC (in
  constant time) before it unpickles, and refuses a file signed with another
  key or changed by one byte (:class:`CheckpointError`);
* :data:`FORMAT` names the payload layout; a checkpoint of an older layout
  is refused cleanly instead of failing later inside the learner;
* files are written to a temporary name, fsynced and renamed
  (``os.replace``), so a crash never leaves a half-written file that looks
  valid, and names sort by creation time for :func:`latest_checkpoint`.

>>> import tempfile
>>> from pathlib import Path
>>> directory = Path(tempfile.mkdtemp())
>>> path = save_checkpoint(directory, {"a": "learner"}, {"labelled:0": 7}, key=b"k")
>>> load_checkpoint(path, key=b"k")
({'a': 'learner'}, {'labelled:0': 7})
>>> latest_checkpoint(directory) == path
True
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "PATTERN",
    "CheckpointError",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

SIG_BYTES = 32
PATTERN = "ckpt-*.bin"
FORMAT = "bertctr-learner/2"


class CheckpointError(ValueError):
    """A checkpoint that is not ours, was changed since it was written, or is of another format."""


def _sign(key: bytes, payload: bytes) -> bytes:
    if not key:
        raise ValueError("a checkpoint key must not be empty")
    return hmac.new(key, payload, hashlib.sha256).digest()


def save_checkpoint(
    directory: Path, learner: Any, offsets: dict[str, int], key: bytes, keep: int = 3
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
    """
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps((FORMAT, learner, dict(offsets)), protocol=pickle.HIGHEST_PROTOCOL)
    signature = _sign(key, payload)
    path = directory / f"ckpt-{time.time_ns():020d}.bin"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-ckpt-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(signature + payload)
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
    log.debug("checkpoint %s (%d bytes) covers %s", path, len(payload), offsets)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every OS allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_checkpoint(path: Path, key: bytes) -> tuple[Any, dict[str, int]]:
    """Verify, then load ``(learner, offsets)``.

    Raises
    ------
    CheckpointError
        If the signature does not verify with ``key`` or the format is not
        :data:`FORMAT`; nothing is unpickled when the signature fails.
    """
    data = path.read_bytes()
    signature, payload = data[:SIG_BYTES], data[SIG_BYTES:]
    if len(signature) != SIG_BYTES or not hmac.compare_digest(signature, _sign(key, payload)):
        raise CheckpointError(f"{path}: signature does not verify")
    content = pickle.loads(payload)  # safe: the payload is signed with our key
    if not (isinstance(content, tuple) and len(content) == 3 and content[0] == FORMAT):
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
    _, learner, offsets = content
    return learner, dict(offsets)


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint file in ``directory``, or ``None`` if there is none."""
    if not directory.is_dir():
        return None
    found = sorted(directory.glob(PATTERN))
    return found[-1] if found else None
