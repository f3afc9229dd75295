"""The worker's feeds, tasks and timers: thin loops around the parts that do the work.

Two consumer-group feeds on the worker's share of the partitions
(:class:`~streams.kafka.group_feed.GroupFeed`: a whole poll per call, offsets
committed after it, explicit rebalances), each marking what it handled for
the health report:

* ``join``: impressions, clicks and ticks -> labels (:class:`JoinAgent`),
  group ``<app id>-join``;
* ``counters``: labels -> the settled counters (:mod:`streams.counters.label_batch`),
  group ``<app id>-counters``.

and one task, the learner (:class:`~streams.learner.feed.LearnerFeed`): a bid
for the learner lease and, while held, every ``labelled`` partition -> the
one online model. It is built in a thread once the tasks start
(:class:`~streams.learner_slot.LearnerSlot`), while the feeds wait for
their groups: its imports take longer than the rest of the worker's start.
``BERTCTR_WORKER_ROLE`` picks which run: ``all`` (both), ``join`` (the feeds
only), ``learner`` (the task only).

The Faust app hosts them: it runs the tasks and timers and the process's
lifecycle. Timers tick every join partition (so an idle one still expires)
and write the health report. With ``BERTCTR_METRICS_PORT`` set, the worker's
:class:`WorkerTelemetry` also counts each batch by topic and copies the
learner's metrics once a timer tick (see :mod:`streams.telemetry`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from schemas import topics
from streams.counters.redis_counters import RedisCounters
from streams.health.progress import Progress
from streams.health.reporter import HealthReporter
from streams.join.agent import JoinAgent
from streams.kafka.app import StreamApp
from streams.kafka.emitter import Emitter
from streams.kafka.group_feed import GroupFeed
from streams.learner_slot import LearnerSlot
from streams.telemetry import WorkerTelemetry

__all__ = ["WorkerParts", "attach_agents"]

log = logging.getLogger(__name__)

#: ``dead(reason, detail, message)``: dead-letters a consumed message
DeadLetterFn = Callable[[str, str, Any], Awaitable[None]]


@dataclass
class WorkerParts:
    """What the tasks drive; built by :func:`streams.worker.build_worker_app`."""

    stream: StreamApp
    emitter: Emitter
    join: JoinAgent
    counters: RedisCounters
    #: the join's and the counters' feeds; None for BERTCTR_WORKER_ROLE=learner
    join_feed: GroupFeed | None
    counter_feed: GroupFeed | None
    #: the learner's bid and term; None for BERTCTR_WORKER_ROLE=join
    learner: LearnerSlot | None
    health: HealthReporter
    progress: Progress
    dead: DeadLetterFn
    #: the worker's own metrics; None without BERTCTR_METRICS_PORT
    telemetry: WorkerTelemetry | None = None


def attach_agents(parts: WorkerParts) -> None:
    """Register the feeds, the learner task, the timers and the hooks for the worker's role."""
    app, settings = parts.stream.app, parts.stream.settings
    learner, emitter = parts.learner, parts.emitter
    join_feed, counter_feed = parts.join_feed, parts.counter_feed
    telemetry = parts.telemetry
    ticks_topic = settings.topic(topics.JOIN_TICKS)

    async def join_task() -> None:
        assert join_feed is not None
        await join_feed.run()

    async def counter_task() -> None:
        assert counter_feed is not None
        await counter_feed.run()

    async def tick() -> None:
        """One tick per owned join partition, so idle partitions still expire."""
        if join_feed is None:
            return
        try:
            pending = [
                await emitter.send(ticks_topic, b"", key=b"tick", partition=tp.partition)
                for tp in list(join_feed.owned)
                if tp.topic == ticks_topic
            ]
            await emitter.flush_all(pending)
        except Exception as exc:  # the next tick tries again
            log.warning("could not send join ticks: %s", exc)

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

    async def on_shutdown(app_: Any, /, *args: Any, **kwargs: Any) -> None:
        for feed in (join_feed, counter_feed):
            if feed is not None:
                await feed.close()
        if learner is not None:
            await learner.close()
        await parts.health.withdraw()
        await emitter.stop()

    if join_feed is not None and counter_feed is not None:
        app.task(join_task)
        app.task(counter_task)
        app.timer(interval=settings.tick_interval_s)(tick)
    if learner is not None:
        app.task(learner_task)
        app.timer(interval=settings.metrics_interval_s)(telemetry_timer)
    app.timer(interval=settings.health_interval_s)(health_timer)
    app.on_before_shutdown.connect(on_shutdown)
