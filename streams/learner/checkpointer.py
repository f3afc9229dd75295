"""When the learner saves its model, and the rule that only the lease holder may.

A checkpoint is the model with the ``labelled`` offsets it covers, so it is
the only record of where learning stands. Labels make the model dirty and are
saved on the interval or when the stream goes quiet; watermark records alone
move offsets and are saved on the interval only, so a quiet stream does not
write a checkpoint every idle tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from online_ctr.promotion.duel import EncoderDuel
from online_ctr.store import ModelStore, SnapshotInfo
from streams.learner.lease import LeaseLost

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves the duel with its offsets into ``store`` when due, if ``guard`` still allows it."""

    def __init__(
        self,
        store: ModelStore,
        interval_s: float,
        guard: Callable[[], Awaitable[bool]] | None,
        offsets: Mapping[str, int],
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.guard = guard
        #: the offsets of the newest checkpoint (where a restart would resume)
        self.checkpointed: dict[str, int] = dict(offsets)
        self._last = time.monotonic()
        self._dirty = False
        #: only watermark records moved the offsets since the last checkpoint
        self._offsets_moved = False

    def learned(self) -> None:
        """Examples were learned since the last checkpoint."""
        self._dirty = True

    def offsets_moved(self) -> None:
        """Only watermark records moved the offsets."""
        self._offsets_moved = True

    def due(self, now: float, force: bool = False) -> bool:
        """Whether to save at monotonic time ``now`` (``force``: the stream went quiet)."""
        interval = now - self._last >= self.interval_s
        return (self._dirty and (force or interval)) or (self._offsets_moved and interval)

    async def save(
        self, duel: EncoderDuel, offsets: Mapping[str, int], metadata: dict[str, Any]
    ) -> SnapshotInfo:
        """Save now; raises :class:`~streams.learner.lease.LeaseLost` if the guard refuses."""
        if self.guard is not None and not await self.guard():
            raise LeaseLost("the learner lease was lost; this model is not saved")
        self._last = time.monotonic()
        self._dirty = self._offsets_moved = False
        covered = dict(offsets)
        info = await asyncio.to_thread(self.store.save, duel, covered, metadata)
        self.checkpointed = covered
        log.info("checkpoint %s covers %s", info.name, covered)
        return info
