"""Wiring of a worker process: app, agents, timers, rebalance hook.

``bertctr worker`` calls :func:`run_worker`; tests run the same command in a
subprocess, so what is tested is what runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import faust
import redis.asyncio as aioredis
from faust.types import TP
from redis.exceptions import RedisError

from schemas import topics
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.app import StreamApp, create_app
from streams.counter_agent import handle_batch
from streams.counters import RedisCounters
from streams.deadletter import send_dead_letter
from streams.embedding import embedder_factory
from streams.health import Progress, default_worker_id, write_local_report
from streams.join_agent import JoinAgent
from streams.learner_agent import LearnerAgent

__all__ = ["build_worker_app", "prepare_directories", "run_worker"]

log = logging.getLogger(__name__)

COUNTER_BATCH = 500
COUNTER_BATCH_WITHIN_S = 0.2
#: the join's micro-batch: small enough that a click reaches the live
#: counters within tens of milliseconds, large enough to share round trips
JOIN_BATCH = 500
JOIN_BATCH_WITHIN_S = 0.02
#: how long a health report outlives its worker in Redis
HEALTH_TTL_S = 3600


def prepare_directories(settings: Settings) -> None:
    """Create the data and checkpoint directories, parents included.

    Faust creates only the last level of its data directory, so a worker
    started where ``var/`` does not exist would die at start.
    """
    for directory in (settings.data_dir, settings.checkpoint_dir):
        Path(directory).mkdir(parents=True, exist_ok=True)


class _Health:
    """Writes this worker's health report (see :mod:`streams.health`)."""

    def __init__(
        self,
        stream: StreamApp,
        redis_client: aioredis.Redis,
        progress: Progress,
        join: JoinAgent,
    ) -> None:
        s = stream.settings
        self.stream = stream
        self.client = redis_client
        self.progress = progress
        self.join = join
        self.worker_id = s.worker_id or default_worker_id()
        self.key = KeySpace(s.redis_prefix).health(self.worker_id)
        self.started_at = time.time()
        names = topics.full_names(s)
        self.topics_of = {
            "join": {names[topics.IMPRESSIONS], names[topics.CLICKS], names[topics.JOIN_TICKS]},
            "counters": {names[topics.LABELLED]},
            "learner": {names[topics.LABELLED]},
        }

    def build(self) -> dict[str, Any]:
        consumer = self.stream.app.consumer
        assignment = consumer.assignment()
        committed_map = getattr(consumer, "_committed_offset", {})

        def highwater(topic: str, partition: int) -> int | None:
            try:
                value = consumer.highwater(TP(topic, partition))
            except Exception:  # not fetched yet
                return None
            return int(value) if value is not None else None

        def committed(topic: str, partition: int) -> int | None:
            value = committed_map.get(TP(topic, partition))
            return int(value) if value is not None else None

        assigned = {
            agent: [(tp.topic, tp.partition) for tp in assignment if tp.topic in names]
            for agent, names in self.topics_of.items()
        }
        now = time.time()
        return {
            "worker": self.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": now,
            "started_at": self.started_at,
            "interval_s": self.stream.settings.health_interval_s,
            "partitions": self.progress.report(assigned, highwater, committed, now),
            "join": self.join.counts.as_dict(),
            "books": self.join.book_status(),
        }

    async def publish(self) -> None:
        report = self.build()
        write_local_report(Path(self.stream.settings.data_dir), report)
        try:
            await self.client.set(self.key, json.dumps(report, sort_keys=True), ex=HEALTH_TTL_S)
        except (RedisError, OSError) as exc:
            log.warning("could not publish the health report: %s", exc)

    async def withdraw(self) -> None:
        """A worker that stops cleanly takes its report with it."""
        try:
            await self.client.delete(self.key)
        except (RedisError, OSError) as exc:
            log.warning("could not withdraw the health report: %s", exc)


def build_worker_app(settings: Settings) -> StreamApp:
    """The app with the join, counter and learner agents and their timers."""
    stream = create_app(settings)
    app = stream.app
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    counters = RedisCounters(
        redis_client, KeySpace(settings.redis_prefix), seen_ttl_s=settings.late_click_horizon_s * 2
    )
    join = JoinAgent(stream, apply_live=counters.apply_live)
    progress = Progress()

    def mark(agent: str, events: Any) -> None:
        now = time.time()
        for event in events:
            m = event.message
            progress.mark(agent, m.topic, m.partition, m.offset, now)

    @app.agent(stream.join_source, name="join")
    async def join_agent(stream_: Any) -> None:
        # take_events is faust-streaming's; its type stubs predate it.
        async for events in stream_.take_events(JOIN_BATCH, within=JOIN_BATCH_WITHIN_S):
            await join.handle_batch(events)
            mark("join", events)

    async def dead(reason: str, detail: str, message: Any) -> None:
        await send_dead_letter(stream.dead_letter, reason, detail, message)

    @app.agent(stream.labelled, name="counters")
    async def counter_agent(stream_: Any) -> None:
        async for events in stream_.take_events(COUNTER_BATCH, within=COUNTER_BATCH_WITHIN_S):
            await handle_batch(events, counters.apply, dead)
            mark("counters", events)

    async def tick() -> None:
        """One tick per assigned partition, so idle partitions still expire."""
        ticks_topic = settings.topic(topics.JOIN_TICKS)
        for tp in app.consumer.assignment():
            if tp.topic == ticks_topic:
                await stream.ticks.send(key=b"tick", value=b"", partition=tp.partition)

    async def on_revoked(app_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        join.forget_books()
        progress.forget()

    learner = LearnerAgent(
        settings,
        redis_client,
        KeySpace(settings.redis_prefix),
        embedder=embedder_factory(settings, redis_client),
        dead=dead,
    )

    async def learner_agent(stream_: Any) -> None:
        async for events in stream_.take_events(COUNTER_BATCH, within=COUNTER_BATCH_WITHIN_S):
            await learner.handle_batch(events)
            mark("learner", events)

    async def learner_timer() -> None:
        await learner.on_timer()

    health = _Health(stream, redis_client, progress, join)

    async def health_timer() -> None:
        await health.publish()

    app.agent(stream.labelled, name="learner")(learner_agent)
    app.timer(interval=settings.metrics_interval_s)(learner_timer)
    app.timer(interval=settings.tick_interval_s)(tick)
    app.timer(interval=settings.health_interval_s)(health_timer)
    app.on_partitions_revoked.connect(on_revoked)

    async def on_shutdown(app_: Any, /, *args: Any, **kwargs: Any) -> None:
        await learner.close()
        await health.withdraw()

    app.on_before_shutdown.connect(on_shutdown)

    return stream


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGTERM/SIGINT)."""
    prepare_directories(settings)
    stream = build_worker_app(settings)
    worker = faust.Worker(stream.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
