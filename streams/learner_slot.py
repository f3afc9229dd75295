"""The worker's learner, built while the feeds wait for their consumer groups.

The learner's modules (the online model, River, SciPy, pandas, the
encoder client) take seconds to import, several times what the rest of a
worker does, and nothing the join or the counters count needs them. A
fresh consumer group's first join keeps the feeds waiting on the broker
for longer than that (Tansu: half the session timeout), so the worker
starts its feeds first and imports and builds the learner in a thread in
the meantime: its start-up costs one group join, not a join plus imports.

Until it is built the slot stands by, as a worker without the lease does:
it owns no partition and its health report says ``standby``. A build that
fails raises :class:`LearnerBuildError` from :meth:`LearnerSlot.run`, so the
worker's task crashes the worker (exit status 1, the cause logged), as a
failure to build it at start did: a worker never stands by for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for types: importing it is what the slot defers
    from streams.learner.agent import LearnerAgent
    from streams.learner.feed import LearnerFeed

__all__ = ["LearnerBuildError", "LearnerSlot"]

log = logging.getLogger(__name__)


class LearnerBuildError(RuntimeError):
    """The learner could not be imported or built; its cause is chained."""


class LearnerSlot:
    """Builds a :class:`~streams.learner.feed.LearnerFeed` in a thread on :meth:`run`, then runs it.

    ``build`` imports what the learner needs and returns the feed; it runs
    in a worker thread, once however many wait for it (:meth:`built`), so it
    must not touch the event loop (the feed binds to it only when it runs).
    """

    #: the agent's name in the health report
    name = "learner"

    def __init__(self, build: Callable[[], LearnerFeed]) -> None:
        self._build = build
        #: the running feed; None until it is built and running
        self.feed: LearnerFeed | None = None
        self._building: asyncio.Future[LearnerFeed] | None = None
        self._closed = False

    async def built(self) -> LearnerFeed:
        """The feed, built once in a thread; every caller waits for the same build.

        Raises :class:`LearnerBuildError` (to every caller) if the build failed.
        A caller cancelled while it waits does not cancel the build.
        """
        if self._building is None:
            self._building = asyncio.ensure_future(self._build_in_thread())
            # retrieved here too, so a failure nobody awaits any more is not logged as lost
            self._building.add_done_callback(_retrieve)
        return await asyncio.shield(self._building)

    async def _build_in_thread(self) -> LearnerFeed:
        started = time.monotonic()
        try:
            feed = await asyncio.to_thread(self._build)
        except Exception as exc:
            raise LearnerBuildError(f"the learner could not be built: {exc!r}") from exc
        log.info("learner built in %.1f s", time.monotonic() - started)
        return feed

    async def run(self) -> None:
        """Build the learner (off the event loop), then bid and learn until :meth:`close`.

        Raises :class:`LearnerBuildError` when the build fails.
        """
        try:
            feed = await self.built()
        except LearnerBuildError as exc:  # Faust logs the traceback as it stops the worker
            log.error("the worker stops: %s", exc)
            raise
        if self._closed:  # stopped while it was being built
            return
        # set and started in one step of the loop, so close() finds it running
        self.feed = feed
        log.info("bidding for the learner lease")
        await feed.run()

    async def close(self) -> None:
        """Stop the feed if it runs; a build still under way is left to finish unused."""
        self._closed = True
        if self.feed is not None:
            await self.feed.close()

    @property
    def agent(self) -> LearnerAgent | None:
        """The learning agent while this worker holds the lease, else None."""
        return self.feed.agent if self.feed is not None else None

    def describe(self) -> dict[str, Any]:
        """As :meth:`LearnerFeed.describe`; a learner not built yet stands by."""
        if self.feed is None:
            return {"role": "standby", "epoch": None, "terms": 0}
        return self.feed.describe()

    def assigned(self) -> list[tuple[str, int]]:
        return self.feed.assigned() if self.feed is not None else []

    def highwater(self, topic: str, partition: int) -> int | None:
        return self.feed.highwater(topic, partition) if self.feed is not None else None

    def committed(self, topic: str, partition: int) -> int | None:
        return self.feed.committed(topic, partition) if self.feed is not None else None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
