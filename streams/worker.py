"""Wiring of a worker process: the parts, their agents, and the Faust worker.

``bertctr worker`` calls :func:`run_worker`; tests run the same command in a
subprocess, so what is tested is what runs. The agents themselves are in
:mod:`streams.agents`; this module only builds what they drive.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust

from schemas import topics
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.agents import WorkerParts, attach_agents
from streams.counters.label_batch import handle_batch
from streams.counters.redis_counters import RedisCounters
from streams.health.progress import Progress, default_worker_id
from streams.health.reporter import HealthReporter, PartitionProgress
from streams.join.agent import JoinAgent
from streams.join.state import JoinStateLog
from streams.kafka.app import StreamApp, create_app
from streams.kafka.deadletter import DeadLetterTally
from streams.kafka.emitter import Emitter
from streams.kafka.group_feed import FeedEvent, GroupFeed
from streams.learner_slot import LearnerSlot
from streams.telemetry import WorkerTelemetry
from wiring.connections import async_redis

if TYPE_CHECKING:  # imported by the learner's builder, in a thread (see LearnerSlot)
    from streams.learner.agent import LearnerAgent
    from streams.learner.feed import LearnerFeed

__all__ = ["build_worker", "build_worker_app", "prepare_directories", "run_worker"]

log = logging.getLogger(__name__)


def prepare_directories(settings: Settings) -> None:
    """Create the data and checkpoint directories, parents included.

    Faust creates only the last level of its data directory, so a worker
    started where ``var/`` does not exist would die at start.
    """
    for directory in (settings.data_dir, settings.checkpoint_dir):
        Path(directory).mkdir(parents=True, exist_ok=True)


def build_worker(settings: Settings) -> WorkerParts:
    """The parts of a worker, their agents and timers attached to its app.

    With ``BERTCTR_METRICS_PORT`` set the parts include the worker's
    :class:`~streams.telemetry.WorkerTelemetry` (not yet serving:
    :func:`run_worker` starts its server).
    """
    stream = create_app(settings)
    keys = KeySpace(settings.redis_prefix)
    redis_client = async_redis(settings)
    emitter = Emitter(settings)
    counters = RedisCounters(redis_client, keys, seen_ttl_s=settings.late_click_horizon_s * 2)
    join = JoinAgent(
        settings, emitter, JoinStateLog(settings, emitter), apply_live=counters.apply_live
    )
    progress = Progress()
    tally = DeadLetterTally()

    async def dead(reason: str, detail: str, message: Any) -> None:
        tally.add(reason)
        await emitter.dead_message(reason, detail, message)

    worker_id = settings.worker_id or default_worker_id()

    def dead_letter_counts() -> dict[str, int]:
        """Every message this worker dead-lettered, by reason: the join's and the others'."""
        return tally.merged(join.counts.rejected)

    telemetry = (
        WorkerTelemetry(join.counts, dead_letter_counts, settings.worker_role)
        if settings.metrics_port is not None
        else None
    )
    observe = telemetry.handled if telemetry is not None else None
    join_feed = counter_feed = None
    if settings.worker_role != "learner":
        join_feed, counter_feed = _group_feeds(settings, join, counters, progress, dead, observe)
    learner = None
    if settings.worker_role != "join":

        def build_learner() -> LearnerFeed:
            """The learner feed; its imports take seconds, so it is built in a thread."""
            from streams.learner.agent import LearnerAgent
            from streams.learner.feed import LearnerFeed
            from streams.learner.lease import LearnerLease
            from wiring.embedding import embedder_factory

            embedder = embedder_factory(
                settings, redis_client, telemetry.triton if telemetry is not None else None
            )

            def make_agent(guard: Callable[[], Awaitable[bool]]) -> LearnerAgent:
                return LearnerAgent(
                    settings, redis_client, keys, embedder=embedder, dead=dead, guard=guard
                )

            lease = LearnerLease(redis_client, keys, worker_id, ttl_s=settings.learner_lease_s)
            return LearnerFeed(settings, lease, make_agent, progress, observe)

        learner = LearnerSlot(build_learner)
    feeds: list[PartitionProgress] = [f for f in (join_feed, counter_feed, learner) if f]
    health = HealthReporter(
        settings,
        redis_client,
        progress,
        worker_id,
        feeds,
        {
            "learner": learner.describe if learner is not None else lambda: None,
            "join": join.counts.as_dict,
            "books": join.book_status,
        },
        dead_letter_counts,
    )
    parts = WorkerParts(
        stream,
        emitter,
        join,
        counters,
        join_feed,
        counter_feed,
        learner,
        health,
        progress,
        dead,
        telemetry,
    )
    attach_agents(parts)
    return parts


def _group_feeds(
    settings: Settings,
    join: JoinAgent,
    counters: RedisCounters,
    progress: Progress,
    dead: Callable[[str, str, Any], Awaitable[None]],
    observe: Callable[[str, Sequence[Any]], None] | None,
) -> tuple[GroupFeed, GroupFeed]:
    """The join's feed (impressions, clicks, ticks) and the counters' (labels)."""
    names = topics.full_names(settings.topic_prefix)
    join_feed = GroupFeed(
        settings,
        "join",
        f"{settings.app_id}-join",
        [names[topics.IMPRESSIONS], names[topics.CLICKS], names[topics.JOIN_TICKS]],
        join.handle_batch,
        progress,
        on_assigned=join.assigned,
        on_revoked=join.revoked,
        observe=observe,
    )
    join.highwater, join.committed = join_feed.highwater, join_feed.committed

    async def count(records: Sequence[Any]) -> None:
        await handle_batch([FeedEvent(r) for r in records], counters.apply, dead)

    counter_feed = GroupFeed(
        settings,
        "counters",
        f"{settings.app_id}-counters",
        [names[topics.LABELLED]],
        count,
        progress,
        observe=observe,
    )
    return join_feed, counter_feed


def build_worker_app(settings: Settings) -> StreamApp:
    """The app with the agents, the learner task and the timers of the worker's role."""
    return build_worker(settings).stream


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one Faust worker until it is stopped (SIGTERM/SIGINT)."""
    prepare_directories(settings)
    parts = build_worker(settings)
    if parts.telemetry is not None and settings.metrics_port is not None:
        parts.telemetry.serve(settings.metrics_port)
    worker = faust.Worker(parts.stream.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
