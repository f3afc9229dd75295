"""Writes a worker's health report: to Redis for ``bertctr health``, and to disk.

What the report says, and how it is judged, is :mod:`streams.health.progress` (pure);
this module gathers the feeds' offsets and the worker's sections into it and
publishes it every ``BERTCTR_HEALTH_INTERVAL_S``. It knows the feeds only as
:class:`PartitionProgress`, so the join's, the counters' and the learner's
feeds, and test fakes, all serve.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from schemas.keys import HEALTH_TTL_S, KeySpace
from schemas.settings import Settings
from streams.health.progress import Progress, write_local_report

__all__ = ["HealthReporter", "PartitionProgress"]


class PartitionProgress(Protocol):
    """A feed as the health report sees it: its partitions and how far it has got."""

    @property
    def name(self) -> str:
        """The agent's name in the report (``join``, ``counters``, ``learner``)."""
        ...

    def assigned(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs the feed holds now."""
        ...

    def highwater(self, topic: str, partition: int) -> int | None:
        """The partition's high watermark, if known."""
        ...

    def committed(self, topic: str, partition: int) -> int | None:
        """The feed's committed offset in the partition, if any."""
        ...


log = logging.getLogger(__name__)


class HealthReporter:
    """Writes this worker's health report (see :mod:`streams.health.progress`).

    ``sections`` are the report's other top-level entries (``join``,
    ``books``, ``learner``), each read when a report is built;
    ``dead_letters`` counts every message the worker dead-lettered, by reason.
    """

    def __init__(
        self,
        settings: Settings,
        redis_client: aioredis.Redis,
        progress: Progress,
        worker_id: str,
        feeds: Sequence[PartitionProgress],
        sections: Mapping[str, Callable[[], Any]],
        dead_letters: Callable[[], dict[str, int]],
    ) -> None:
        self.settings = settings
        self.client = redis_client
        self.progress = progress
        self.worker_id = worker_id
        self.feeds = list(feeds)
        self.sections = dict(sections)
        self.dead_letters = dead_letters
        self.key = KeySpace(settings.redis_prefix).health(worker_id)
        self.index = KeySpace(settings.redis_prefix).workers
        self.started_at = time.time()

    def build(self) -> dict[str, Any]:
        now = time.time()
        partitions: dict[str, dict[str, dict[str, Any]]] = {}
        for feed in self.feeds:
            partitions.update(
                self.progress.report(
                    {feed.name: feed.assigned()}, feed.highwater, feed.committed, now
                )
            )
        return {
            "worker": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": now,
            "started_at": self.started_at,
            "interval_s": self.settings.health_interval_s,
            "partitions": partitions,
            **{name: read() for name, read in self.sections.items()},
            "dead_letters": self.dead_letters(),
        }

    async def publish(self) -> None:
        report = self.build()
        write_local_report(Path(self.settings.data_dir), report)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.key, json.dumps(report, sort_keys=True), ex=HEALTH_TTL_S)
                pipe.zadd(self.index, {self.worker_id: report["at"]})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not publish the health report: %s", exc)

    async def withdraw(self) -> None:
        """A worker that stops cleanly takes its report with it."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(self.key)
                pipe.zrem(self.index, self.worker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not withdraw the health report: %s", exc)
