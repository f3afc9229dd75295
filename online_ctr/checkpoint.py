"""Checkpoints of a learner, tied to the input offsets they cover, and signed.

A checkpoint is ``HMAC-SHA256(key, payload) || payload`` where the payload is
the pickled ``(learner, offsets)``. Loading verifies the signature before
unpickling (unpickling untrusted bytes runs code) and refuses on mismatch.
Files are written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint that looks valid.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

SIG_BYTES = 32
PATTERN = "ckpt-*.bin"


class CheckpointError(ValueError):
    """A checkpoint that is not ours, or was changed since it was written."""


def save_checkpoint(
    directory: Path, learner: Any, offsets: dict[str, int], key: bytes, keep: int = 3
) -> Path:
    """Write a signed checkpoint; keep the newest ``keep`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps((learner, dict(offsets)), protocol=pickle.HIGHEST_PROTOCOL)
    signature = hmac.new(key, payload, hashlib.sha256).digest()
    path = directory / f"ckpt-{time.time_ns():020d}.bin"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(signature + payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(directory.glob(PATTERN))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, key: bytes) -> tuple[Any, dict[str, int]]:
    """Verify and load ``(learner, offsets)``; raise :class:`CheckpointError` if tampered."""
    data = path.read_bytes()
    signature, payload = data[:SIG_BYTES], data[SIG_BYTES:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if len(signature) != SIG_BYTES or not hmac.compare_digest(signature, expected):
        raise CheckpointError(f"{path}: signature does not verify")
    learner, offsets = pickle.loads(payload)  # verified above
    return learner, offsets


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint file in ``directory``, if any."""
    if not directory.is_dir():
        return None
    found = sorted(directory.glob(PATTERN))
    return found[-1] if found else None
