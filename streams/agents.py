"""The worker's Faust agents, tasks and timers: thin loops around the parts that do the work.

Two agents on the worker's share of the partitions, each micro-batched with
``take_events`` (one Redis round trip carries many events) and each marking
what it handled for the health report:

* ``join``: impressions, clicks and ticks -> labels (:class:`JoinAgent`);
* ``counters``: labels -> the settled counters (:mod:`streams.label_counter`).

and one task, the learner (:class:`~streams.learner_feed.LearnerFeed`): a bid
for the learner lease and, while held, every ``labelled`` partition -> the
one online model. ``BERTCTR_WORKER_ROLE`` picks which run: ``all`` (both),
``join`` (the agents only), ``learner`` (the task only).

Timers tick every join partition (so an idle one still expires) and write
the health report. With ``BERTCTR_METRICS_PORT`` set, the worker's
:class:`WorkerTelemetry` also counts each batch by topic and copies the
learner's metrics once a timer tick (see :mod:`streams.telemetry`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from schemas import topics
from streams.app import StreamApp
from streams.counters import RedisCounters
from streams.health import Progress
from streams.health_reporter import HealthReporter
from streams.join_agent import JoinAgent
from streams.label_counter import handle_batch
from streams.learner_feed import LearnerFeed
from streams.telemetry import WorkerTelemetry

__all__ = [
    "COUNTER_BATCH",
    "COUNTER_BATCH_WITHIN_S",
    "JOIN_BATCH",
    "JOIN_BATCH_WITHIN_S",
    "WorkerParts",
    "attach_agents",
]

COUNTER_BATCH = 500
COUNTER_BATCH_WITHIN_S = 0.2
#: the join's micro-batch: small enough that a click reaches the live
#: counters within tens of milliseconds, large enough to share round trips
JOIN_BATCH = 500
JOIN_BATCH_WITHIN_S = 0.02

log = logging.getLogger(__name__)

#: ``dead(reason, detail, message)``: dead-letters a consumed message
DeadLetterFn = Callable[[str, str, Any], Awaitable[None]]


@dataclass
class WorkerParts:
    """What the agents drive; built by :func:`streams.worker.build_worker_app`."""

    stream: StreamApp
    join: JoinAgent
    counters: RedisCounters
    #: the learner's bid and term; None for BERTCTR_WORKER_ROLE=join
    learner: LearnerFeed | None
    health: HealthReporter
    progress: Progress
    dead: DeadLetterFn
    #: the worker's own metrics; None without BERTCTR_METRICS_PORT
    telemetry: WorkerTelemetry | None = None


def attach_agents(parts: WorkerParts) -> None:
    """Register the agents, the learner task, the timers and the hooks for the worker's role."""
    stream, app, settings = parts.stream, parts.stream.app, parts.stream.settings
    join, learner, progress = parts.join, parts.learner, parts.progress
    telemetry = parts.telemetry

    def mark(agent: str, events: Any) -> None:
        now = time.time()
        for event in events:
            m = event.message
            progress.mark(agent, m.topic, m.partition, m.offset, now)
        if telemetry is not None:
            telemetry.handled(agent, events)

    # take_events is faust-streaming's; its type stubs predate it.
    async def join_agent(stream_: Any) -> None:
        async for events in stream_.take_events(JOIN_BATCH, within=JOIN_BATCH_WITHIN_S):
            await join.handle_batch(events)
            mark("join", events)

    async def counter_agent(stream_: Any) -> None:
        async for events in stream_.take_events(COUNTER_BATCH, within=COUNTER_BATCH_WITHIN_S):
            await handle_batch(events, parts.counters.apply, parts.dead)
            mark("counters", events)

    async def tick() -> None:
        """One tick per assigned partition, so idle partitions still expire."""
        ticks_topic = settings.topic(topics.JOIN_TICKS)
        for tp in app.consumer.assignment():
            if tp.topic == ticks_topic:
                await stream.ticks.send(key=b"tick", value=b"", partition=tp.partition)

    async def learner_task() -> None:
        assert learner is not None
        await learner.run()

    async def telemetry_timer() -> None:
        agent = learner.agent if learner is not None else None
        if telemetry is None or agent is None:
            return
        try:
            telemetry.observe_model(agent.learner.metrics.overall.snapshot())
        except RuntimeError as exc:  # a batch learning in its thread changed the bins
            log.debug("model metrics not copied this tick: %s", exc)

    async def health_timer() -> None:
        await parts.health.publish()

    async def on_revoked(app_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        join.forget_books()
        progress.forget()

    async def on_shutdown(app_: Any, /, *args: Any, **kwargs: Any) -> None:
        if learner is not None:
            await learner.close()
        await parts.health.withdraw()

    if settings.worker_role != "learner":
        app.agent(stream.join_source, name="join")(join_agent)
        app.agent(stream.labelled, name="counters")(counter_agent)
        app.timer(interval=settings.tick_interval_s)(tick)
    if learner is not None:
        app.task(learner_task)
        app.timer(interval=settings.metrics_interval_s)(telemetry_timer)
    app.timer(interval=settings.health_interval_s)(health_timer)
    app.on_partitions_revoked.connect(on_revoked)
    app.on_before_shutdown.connect(on_shutdown)
