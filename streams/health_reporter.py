"""Writes a worker's health report: to Redis for ``bertctr health``, and to disk.

What the report says, and how it is judged, is :mod:`streams.health` (pure);
this module gathers the consumer's offsets and the join's state into it and
publishes it every ``BERTCTR_HEALTH_INTERVAL_S``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from schemas.keys import KeySpace
from streams.app import StreamApp
from streams.deadletter import DeadLetterTally
from streams.group_feed import GroupFeed
from streams.health import Progress, default_worker_id, write_local_report
from streams.join_agent import JoinAgent
from streams.learner_feed import LearnerFeed

__all__ = ["HEALTH_TTL_S", "HealthReporter"]

log = logging.getLogger(__name__)

#: how long a health report outlives its worker in Redis
HEALTH_TTL_S = 3600


class HealthReporter:
    """Writes this worker's health report (see :mod:`streams.health`)."""

    def __init__(
        self,
        stream: StreamApp,
        redis_client: aioredis.Redis,
        progress: Progress,
        join: JoinAgent,
        dead_letters: DeadLetterTally | None = None,
        learner: LearnerFeed | None = None,
    ) -> None:
        s = stream.settings
        self.stream = stream
        self.client = redis_client
        self.progress = progress
        self.join = join
        #: the join's and the counters' feeds (none for a dedicated learner)
        self.feeds: list[GroupFeed] = []
        #: the learner's partitions are its own consumer's, not a group's
        self.learner = learner
        #: dead letters of the agents other than the join (the join counts its own)
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetterTally()
        self.worker_id = s.worker_id or default_worker_id()
        self.key = KeySpace(s.redis_prefix).health(self.worker_id)
        self.index = KeySpace(s.redis_prefix).workers
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
        if self.learner is not None:
            feed_l = self.learner
            partitions.update(
                self.progress.report(
                    {"learner": feed_l.assigned()}, feed_l.highwater, feed_l.committed, now
                )
            )
        return {
            "worker": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": now,
            "started_at": self.started_at,
            "interval_s": self.stream.settings.health_interval_s,
            "partitions": partitions,
            "learner": self.learner.describe() if self.learner is not None else None,
            "join": self.join.counts.as_dict(),
            "dead_letters": self.dead_letter_counts(),
            "books": self.join.book_status(),
        }

    def dead_letter_counts(self) -> dict[str, int]:
        """Every message this worker dead-lettered, by reason: the join's and the others'."""
        return self.dead_letters.merged(self.join.counts.rejected)

    async def publish(self) -> None:
        report = self.build()
        write_local_report(Path(self.stream.settings.data_dir), report)
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
