"""The model the API scores with: the champion of the newest snapshot, reloaded as it changes.

The learner agent saves snapshots through the :class:`~online_ctr.store.ModelStore`
port; the API never learns, it only reads. A :class:`ModelWatcher` polls the
store's cheap :meth:`~online_ctr.store.ModelStore.newest` name and loads a
snapshot only when the name changes, in a thread, then swaps the served
model in one assignment: a request in flight keeps the model it started
with, and a snapshot that does not verify leaves the previous one serving.
Scoring always uses the **champion** of an encoder duel (a challenger being
judged in shadow never ranks anything), together with the image encoder
version the champion learned with, so candidates are embedded the way the
model saw its examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from online_ctr.frozen import BatchPredictor, batch_predictor
from online_ctr.learner import Learner
from online_ctr.promotion.duel import EncoderDuel
from online_ctr.store import CheckpointError, ModelStore
from wiring.models import champion_of

__all__ = ["ModelWatcher", "ServedModel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One loaded snapshot's champion and what a response says about it."""

    learner: Learner = field(repr=False)
    #: the learner's predictions for a request's candidates, from weights derived
    #: once (:mod:`online_ctr.frozen`)
    predict_many: BatchPredictor = field(repr=False)
    snapshot: str
    saved_at: float
    image_model: str
    challenger_version: str | None
    metadata: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """The ``model`` block of a response."""
        return {
            "snapshot": self.snapshot,
            "saved_at": self.saved_at,
            "name": self.metadata.get("model"),
            "learned": self.learner.learned,
        }


def _settle_garbage() -> None:
    """Keep the cyclic garbage collector from walking the model on every request.

    A snapshot is a few million long-lived objects; Python's generational
    collector walks all of them at each full collection, a pause of ~100 ms
    that landed in the p99 of ``POST /score`` (``bench/bench_api.py``).
    After a load, collect once (the previous model's cycles, if any) and
    freeze what is left: frozen objects are skipped by later collections and
    still freed by reference counting when the next model replaces them.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelWatcher:
    """Keeps :attr:`current` at the newest usable snapshot of ``store``."""

    def __init__(self, store: ModelStore, poll_s: float = 5.0) -> None:
        self.store = store
        self.poll_s = poll_s
        self.current: ServedModel | None = None
        #: names tried and refused, so a bad snapshot is not reloaded every poll
        self._refused: str | None = None
        self.loads = 0
        self.last_checked: float | None = None

    def refresh(self) -> bool:
        """Load the newest snapshot if it is new; True when the served model changed.

        Synchronous (a load unpickles tens of MB): call it in a thread.
        """
        self.last_checked = time.time()
        newest = self.store.newest()
        if newest is None or newest == self._refused:
            return False
        if self.current is not None and newest == self.current.snapshot:
            return False
        try:
            snapshot = self.store.load(newest)
        except (CheckpointError, KeyError) as exc:
            log.warning("not serving snapshot %s: %s", newest, exc)
            self._refused = newest
            return False
        try:
            duel = EncoderDuel.adopt(snapshot.learner, None)
        except TypeError as exc:
            log.warning("snapshot %s holds no model: %s", newest, exc)
            self._refused = newest
            return False
        self.current = ServedModel(
            learner=duel.champion,
            predict_many=batch_predictor(duel.champion),
            snapshot=snapshot.name,
            saved_at=snapshot.created_at,
            image_model=champion_of(duel).image_model,
            challenger_version=duel.challenger_version,
            metadata=dict(snapshot.metadata),
        )
        self.loads += 1
        _settle_garbage()
        log.info("serving snapshot %s (%d examples)", snapshot.name, duel.champion.learned)
        return True

    async def run(self) -> None:
        """Refresh every ``poll_s`` until cancelled; a failing store is logged, not fatal."""
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except OSError as exc:
                log.warning("model store unavailable: %s", exc)
            await asyncio.sleep(self.poll_s)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel a :meth:`run` task and wait for it."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
