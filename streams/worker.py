"""Wiring of a worker process: app, agents, tick timer, rebalance hook.

``bertctr worker`` calls :func:`run_worker`; tests run the same command in a
subprocess, so what is tested is what runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
import redis.asyncio as aioredis

from bertctr.settings import Settings
from encoder_server.cache import EmbeddingCache
from encoder_server.client import TritonEmbeddingClient
from encoder_server.embedder import Embedder
from encoder_server.image_store import image_store_from_settings
from streams import topics
from streams.app import StreamApp, create_app
from streams.counter_agent import handle_batch
from streams.counters import RedisCounters
from streams.deadletter import send_dead_letter
from streams.join_agent import JoinAgent
from streams.keys import KeySpace
from streams.learner_agent import LearnerAgent

log = logging.getLogger(__name__)

COUNTER_BATCH = 500
COUNTER_BATCH_WITHIN_S = 0.2


def embedder_factory(
    settings: Settings, redis_client: aioredis.Redis
) -> Callable[[], Embedder] | None:
    """How the learner makes its embedder: only when Triton is configured."""
    if not settings.triton_url:
        log.info("BERTCTR_TRITON_URL unset: learning without image and title embeddings")
        return None

    def make() -> Embedder:
        return Embedder(
            TritonEmbeddingClient.from_settings(settings),
            image_store_from_settings(settings),
            EmbeddingCache(redis_client, settings.redis_prefix),
        )

    return make


def build_worker_app(settings: Settings, redis_url: str) -> StreamApp:
    """The app with the join agent, the counter agent and the tick timer."""
    stream = create_app(settings)
    app = stream.app
    join = JoinAgent(stream)
    redis_client = aioredis.Redis.from_url(redis_url)
    counters = RedisCounters(
        redis_client, KeySpace(settings.redis_prefix), seen_ttl_s=settings.late_click_horizon_s * 2
    )

    @app.agent(stream.join_source, name="join")
    async def join_agent(stream_: faust.StreamT[Any]) -> None:
        async for event in stream_.events():
            await join.handle(event)

    async def dead(reason: str, detail: str, message: Any) -> None:
        await send_dead_letter(stream.dead_letter, reason, detail, message)

    @app.agent(stream.labelled, name="counters")
    async def counter_agent(stream_: Any) -> None:
        # take_events is faust-streaming's; its type stubs predate it.
        async for events in stream_.take_events(COUNTER_BATCH, within=COUNTER_BATCH_WITHIN_S):
            await handle_batch(events, counters.apply, dead)

    async def tick() -> None:
        """One tick per assigned partition, so idle partitions still expire."""
        ticks_topic = settings.topic(topics.JOIN_TICKS)
        for tp in app.consumer.assignment():
            if tp.topic == ticks_topic:
                await stream.ticks.send(key=b"tick", value=b"", partition=tp.partition)

    async def on_revoked(app_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        join.forget_books()

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

    async def learner_timer() -> None:
        await learner.on_timer()

    app.agent(stream.labelled, name="learner")(learner_agent)
    app.timer(interval=settings.metrics_interval_s)(learner_timer)
    app.timer(interval=settings.tick_interval_s)(tick)
    app.on_partitions_revoked.connect(on_revoked)

    async def on_shutdown(app_: Any, /, *args: Any, **kwargs: Any) -> None:
        await learner.close()

    app.on_before_shutdown.connect(on_shutdown)

    return stream


def run_worker(settings: Settings, redis_url: str, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGTERM/SIGINT)."""
    stream = build_worker_app(settings, redis_url)
    worker = faust.Worker(stream.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
