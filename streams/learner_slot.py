"""The worker's learner, built while the feeds wait for their consumer groups.

The learner's modules (the online model, River, SciPy, pandas, the
encoder client) take seconds to import, several times what the rest of a
worker does, and nothing the join or the counters count needs them. A
fresh consumer group's first join keeps the feeds waiting on the broker
for longer than that (Tansu: half the session timeout), so the worker
starts its feeds first and imports and builds the learner in a thread in
the meantime: its start-up costs one group join, not a join plus imports.

Until it is built the slot stands by, as a worker without the lease does:
it owns no partition and its health report says ``standby``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for types: importing it is what the slot defers
    from streams.learner.agent import LearnerAgent
    from streams.learner.feed import LearnerFeed

__all__ = ["LearnerSlot"]

log = logging.getLogger(__name__)


class LearnerSlot:
    """Builds a :class:`~streams.learner.feed.LearnerFeed` in a thread on :meth:`run`, then runs it.

    ``build`` imports what the learner needs and returns the feed; it runs
    in a worker thread, so it must not touch the event loop (the feed binds
    to it only when it runs).
    """

    #: the agent's name in the health report
    name = "learner"

    def __init__(self, build: Callable[[], LearnerFeed]) -> None:
        self._build = build
        self.feed: LearnerFeed | None = None
        self._closed = False

    async def run(self) -> None:
        """Build the learner (off the event loop), then bid and learn until :meth:`close`."""
        feed = await asyncio.to_thread(self._build)
        if self._closed:  # stopped while it was being built
            return
        self.feed = feed
        log.info("learner built; bidding for the lease")
        await feed.run()

    async def close(self) -> None:
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
