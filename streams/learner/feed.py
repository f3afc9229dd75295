"""The one learner: whoever holds the lease learns every ``labelled`` partition.

Every worker (``BERTCTR_WORKER_ROLE`` ``all`` or ``learner``) runs a
:class:`LearnerFeed`. It bids for the :class:`~streams.learner.lease.LearnerLease`;
the holder resumes the newest checkpoint from the shared model store, reads
*all* partitions of ``labelled`` with its own consumer (assigned, not in a
consumer group), starting just past the offsets that checkpoint covers, and
feeds them to its :class:`~streams.learner.agent.LearnerAgent`. The others
stand by. So N workers share one model, one progressive evaluation and one
encoder duel, and the scoring API reads that model from the store.

Why not learn by partition on every worker and merge? Averaging FTRL
models through Redis would change what is learned (the NE of N averaged
models is not the NE of one), the champion/challenger comparison needs both
arms to see the same examples, and exactly-once would need every worker's
offsets in one snapshot. One learner keeps all three simple; its cost is
that learning does not scale out: the learner's rate (``bench/bench_pipeline.py``,
``learner_events_per_s``) bounds the model, not the join or the counters,
which do scale by partition.

Exactly once: the checkpoint is the only record of where learning stands.
No offset is committed to Kafka for the learner; a new holder seeks to the
checkpoint's offsets, so what the last holder learned after its last
checkpoint is learned again by the new model, and never twice by one model.
A holder that loses the lease (it stalled past ``BERTCTR_LEARNER_LEASE_S``,
or Redis said another holds it) stops at once, drops its model and saves
nothing more; it bids again as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import RedisError

from schemas import topics
from schemas.settings import Settings
from streams.health.progress import Progress
from streams.kafka.group_feed import FeedEvent, consumer_highwater
from streams.learner.agent import LearnerAgent
from streams.learner.lease import LearnerLease, LeaseLost
from wiring.connections import kafka_client_options

__all__ = ["FeedEvent", "LearnerFeed"]

log = logging.getLogger(__name__)

#: records per read; one batch is embedded and learned in one step
FEED_BATCH = 500
#: how long a read waits for records before the loop looks at its timers
FEED_POLL_MS = 200


class LearnerFeed:
    """Bids for the lease and, while it holds it, learns every ``labelled`` partition.

    ``make_agent(guard)`` builds a learner agent resuming from the newest
    snapshot, with ``guard`` asked before each of its checkpoints.
    """

    #: the agent's name in the health report
    name = "learner"

    def __init__(
        self,
        settings: Settings,
        lease: LearnerLease,
        make_agent: Callable[[Callable[[], Awaitable[bool]]], LearnerAgent],
        progress: Progress,
        observe: Callable[[str, Sequence[Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        #: told of every batch learned (the worker's telemetry), as the agents' are
        self.observe = observe
        self.lease = lease
        self.make_agent = make_agent
        self.progress = progress
        self.topic = settings.topic(topics.LABELLED)
        #: the learning agent while this worker holds the lease, else None
        self.agent: LearnerAgent | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []
        #: how often this worker took the lease
        self.terms = 0
        self._stopping = False
        self._lost = asyncio.Event()
        self._done = asyncio.Event()

    # -- the task -------------------------------------------------------
    async def run(self) -> None:
        """Bid until stopped; learn while the lease is held."""
        while not self._stopping:
            try:
                took = await self.lease.acquire()
            except (RedisError, OSError) as exc:
                log.warning("learner lease unreachable (%s); bidding again", exc)
                took = False
            if not took:
                await asyncio.sleep(self._bid_every_s())
                continue
            self.terms += 1
            self._lost.clear()
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                await self._lead()
            except LeaseLost as exc:
                log.error("%s", exc)
            except Exception:  # Kafka, the store...: step down, bid again
                log.exception("the learner stopped; stepping down and bidding again")
                await asyncio.sleep(self._bid_every_s())
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                await self._step_down()
        self._done.set()

    def _bid_every_s(self) -> float:
        return max(0.2, self.settings.learner_lease_s / 5)

    async def _heartbeat(self) -> None:
        """Renew every third of the lease; on loss, tell the lead loop to stop."""
        every = self.settings.learner_lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                still = await self.lease.renew()
            except (RedisError, OSError) as exc:
                # Redis down: keep learning (the lease only protects saves,
                # and the guard asks Redis again before each one)
                log.warning("could not renew the learner lease: %s", exc)
                continue
            if not still:
                self._lost.set()
                return

    async def _guard(self) -> bool:
        """Asked before each checkpoint: do we still hold the lease?"""
        if self._lost.is_set():
            return False
        try:
            return await self.lease.renew()
        except (RedisError, OSError) as exc:
            log.warning("cannot confirm the learner lease before a checkpoint: %s", exc)
            return False

    async def _lead(self) -> None:
        agent = await asyncio.to_thread(self.make_agent, self._guard)
        agent.identity = {"holder": self.lease.token, "epoch": self.lease.epoch}
        self.agent = agent
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=FEED_BATCH,
            **kafka_client_options(self.settings),
        )
        self.consumer = consumer
        await consumer.start()
        self.partitions = await self._assign(consumer, agent)
        log.warning(
            "learning %d partitions of %s from offsets %s",
            len(self.partitions),
            self.topic,
            agent.offsets,
        )
        next_tick = time.monotonic()
        while not self._stopping and not self._lost.is_set():
            batch = await consumer.getmany(timeout_ms=FEED_POLL_MS, max_records=FEED_BATCH)
            records = [record for part in batch.values() for record in part]
            if records and not self._lost.is_set():
                events = [FeedEvent(r) for r in records]
                await agent.handle_batch(events)
                now = time.time()
                for record in records:
                    self.progress.mark(
                        "learner", record.topic, record.partition, record.offset, now
                    )
                if self.observe is not None:
                    self.observe("learner", events)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.settings.metrics_interval_s
                await agent.on_timer()
        if self._lost.is_set():
            raise LeaseLost("the learner lease was lost; stepping down without saving")
        # a clean stop: save what was learned, so the next holder replays nothing
        await agent.save_if_changed()

    async def _assign(
        self, consumer: AIOKafkaConsumer, agent: LearnerAgent
    ) -> list[TopicPartition]:
        """Assign every partition of ``labelled``, each just past the checkpoint's offset."""
        while True:
            await consumer.topics()  # refreshes the metadata
            found = consumer.partitions_for_topic(self.topic)
            if found:
                break
            log.info("topic %s not there yet; waiting", self.topic)
            await asyncio.sleep(1.0)
        tps = [TopicPartition(self.topic, p) for p in sorted(found)]
        consumer.assign(tps)
        for tp in tps:
            done = agent.offsets.get(f"{tp.topic}:{tp.partition}")
            if done is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, done + 1)
        return tps

    async def _step_down(self) -> None:
        """Close this term: the consumer, the agent's connections, and the lease."""
        agent, consumer = self.agent, self.consumer
        self.agent, self.consumer, self.partitions = None, None, []
        self.progress.partitions.pop("learner", None)
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if agent is not None:
            with contextlib.suppress(Exception):
                await agent.close()
        try:
            await self.lease.release()
        except (RedisError, OSError) as exc:
            log.warning("could not release the learner lease (it expires): %s", exc)

    async def close(self, timeout_s: float = 20.0) -> None:
        """Finish the term cleanly (checkpoint, release the lease), waiting up to ``timeout_s``.

        A term stuck waiting for Triton does not finish in time; it is then
        cancelled with the worker, saves nothing and its lease expires.
        """
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout_s)

    # -- what the health report shows -----------------------------------
    def describe(self) -> dict[str, Any]:
        """This worker's part in learning: holding the lease (and since when) or standing by."""
        return {
            "role": "learner" if self.agent is not None else "standby",
            "epoch": self.lease.epoch or None,
            "terms": self.terms,
        }

    def assigned(self) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self.partitions]

    def highwater(self, topic: str, partition: int) -> int | None:
        return consumer_highwater(self.consumer, topic, partition)

    def committed(self, topic: str, partition: int) -> int | None:
        """The next offset a restart would learn (the checkpoint's, plus one)."""
        agent = self.agent
        if agent is None:
            return None
        done = agent.checkpointed.get(f"{topic}:{partition}")
        return done + 1 if done is not None else None
