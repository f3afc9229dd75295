"""A consumer-group member that handles whole batches and commits what it wrote.

The join and the counters read their topics through a :class:`GroupFeed`
rather than a Faust agent: records arrive as one list per poll, the handler
sees the list, and the batch's offsets are committed once its effects are
written. The per-message machinery of a stream framework (one queue hop,
one ack and one bookkeeping step per event) was most of a worker's CPU;
here a batch of 500 events costs one of each.

Rebalances are where exactly-once is won or lost, so they are explicit. One
lock covers "handle a batch and commit it" and each rebalance callback:

* **revoked**: waits for the batch in hand to finish and commit, then tells
  the owner (the join keeps nothing it may not own). Records already fetched
  for a partition that is no longer ours are dropped, never handled: the
  stale owner of a partition never writes after the new owner has started;
* **assigned**: reads where each partition's committed offset is and lets
  the owner prepare (the join restores its state) before any record of the
  partition is handled.

Partitions are assigned by range, per topic, so partition ``p`` of every
subscribed topic goes to the same member (impressions, clicks and ticks are
co-partitioned). Offsets are committed once a second, on revoke and on
stop, not after every batch: a commit is a broker round trip in the path of
every event, and the records handled since the last commit are harmless to
replay (the join drops events its restored state has seen, the counters
claim a dedup marker per label). A handler that raises (Kafka or Redis gone for longer than
it retries) leaves its batch uncommitted: the feed resets its partitions
(revoked, then assigned again, so state is rebuilt from what was written)
and reads them again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaError

from schemas.settings import Settings
from streams.health.progress import Progress
from wiring.connections import kafka_client_options

__all__ = ["FeedEvent", "GroupFeed", "consumer_highwater"]

log = logging.getLogger(__name__)

#: how long a read waits for records before the loop looks again
POLL_MS = 100
#: how long the broker may hold an empty fetch (aiokafka's default is 500 ms);
#: on Tansu it made no measurable difference to click latency (bench_pipeline)
FETCH_WAIT_MS = 20
#: pause after a failed batch before its partitions are read again
RETRY_S = 1.0
#: offsets are committed at most this often (and always on revoke and stop):
#: a commit is a broker round trip, and a replay is harmless (see below)
COMMIT_EVERY_S = 1.0

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Handler = Callable[[Sequence[Record]], Awaitable[None]]
PartitionsHook = Callable[[set[TopicPartition]], Awaitable[None]]


@dataclass(frozen=True)
class FeedEvent:
    """One consumed record in the shape the agents read (``event.message``)."""

    message: Any


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, feed: GroupFeed) -> None:
        self.feed = feed

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.feed._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.feed._assigned(set(assigned))


class GroupFeed:
    """Reads ``topic_names`` as member of ``group_id``; ``handle`` gets each batch.

    ``on_assigned`` / ``on_revoked`` are called with the lock held, so no
    batch is being handled while they run.
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        group_id: str,
        topic_names: Sequence[str],
        handle: Handler,
        progress: Progress,
        *,
        on_assigned: PartitionsHook | None = None,
        on_revoked: PartitionsHook | None = None,
        observe: Callable[[str, Sequence[Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        #: the agent's name in health reports and metrics
        self.name = name
        self.group_id = group_id
        self.topic_names = list(topic_names)
        self.handle = handle
        self.progress = progress
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.observe = observe
        self.consumer: AIOKafkaConsumer | None = None
        #: the partitions this member owns now
        self.owned: set[TopicPartition] = set()
        #: next offset to read after a restart, per owned partition
        self.committed_offsets: dict[TopicPartition, int] = {}
        #: offsets handled and written, not yet committed
        self._pending: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self.lock = asyncio.Lock()
        self._stopping = False
        #: set when assigned partitions could not be prepared: replace the consumer
        self._broken = False
        self._done = asyncio.Event()

    # -- the task -------------------------------------------------------
    async def run(self) -> None:
        """Consume until :meth:`close`; a consumer that fails is replaced, never given up.

        Whatever stops a consumer (the broker gone longer than aiokafka
        retries, a failed reset) drops every owned partition's state, as a
        revocation would, and a new consumer joins the group again after
        ``RETRY_S``: the worker keeps its share of the join instead of
        running on without it.
        """
        try:
            while not self._stopping:
                try:
                    await self._consume()
                except Exception:
                    log.exception("%s: the consumer failed; joining the group again", self.name)
                    await self._drop_all()
                    await asyncio.sleep(RETRY_S)
        finally:
            self._done.set()

    async def _consume(self) -> None:
        """One consumer's life: join the group, handle batches, commit on the way out."""
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.max_poll_records,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_s / 3) * 1000),
            partition_assignment_strategy=(RangePartitionAssignor,),
            fetch_max_wait_ms=FETCH_WAIT_MS,
            **kafka_client_options(s),
        )
        self.consumer = consumer
        try:
            await consumer.start()
            consumer.subscribe(self.topic_names, listener=_Listener(self))
            while not self._stopping:
                if self._broken:
                    self._broken = False
                    raise RuntimeError("partitions were assigned but their state was not restored")
                batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=s.max_poll_records)
                if batch:
                    await self._handle(batch)
                if self._pending and time.monotonic() - self._committed_at >= COMMIT_EVERY_S:
                    async with self.lock:
                        await self._commit(set(self._pending))
            async with self.lock:
                await self._commit(set(self._pending))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            self.consumer = None

    async def _drop_all(self) -> None:
        """Give up every partition as a revocation would (the next consumer starts over)."""
        async with self.lock:
            # not committed: the next owner reads them again; and whatever a
            # failed restore read, for partitions never owned, goes too
            self._pending.clear()
            self.committed_offsets.clear()
            self.progress.partitions.pop(self.name, None)
            await self._forget(set(self.owned))

    async def _handle(self, batch: dict[TopicPartition, list[Record]]) -> None:
        async with self.lock:
            # a partition revoked since the poll is another member's now
            mine = {tp: records for tp, records in batch.items() if tp in self.owned and records}
            if not mine:
                return
            records = [r for part in mine.values() for r in part]
            try:
                await self.handle(records)
            except Exception:
                log.exception("%s: a batch of %d failed; reading it again", self.name, len(records))
                await self._reset()
                return
            self._pending.update({tp: part[-1].offset + 1 for tp, part in mine.items()})
            now = time.time()
            for tp, part in mine.items():
                self.progress.mark(self.name, tp.topic, tp.partition, part[-1].offset, now)
            if self.observe is not None:
                self.observe(self.name, [FeedEvent(r) for r in records])

    async def _commit(self, tps: set[TopicPartition]) -> None:
        """Commit the handled offsets of ``tps`` (call it with the lock held)."""
        offsets = {tp: self._pending.pop(tp) for tp in tps if tp in self._pending}
        self._committed_at = time.monotonic()
        if not offsets or self.consumer is None:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # the batches are written; the partitions' next owner reads them
            # again and their effects are deduplicated (at-least-once)
            log.warning("%s: commit of %s failed: %s", self.name, offsets, exc)
            return
        self.committed_offsets.update(offsets)

    async def _reset(self) -> None:
        """After a failed batch: forget, rebuild and re-read every owned partition."""
        owned = set(self.owned)
        # the batches before the failed one are written: keep their offsets
        await self._commit(owned)
        await asyncio.sleep(RETRY_S)
        if self.on_revoked is not None:
            await self.on_revoked(owned)
        consumer = self.consumer
        assert consumer is not None
        await self._read_committed(owned)
        for tp in owned:
            if tp in self.committed_offsets:
                consumer.seek(tp, self.committed_offsets[tp])
        if self.on_assigned is not None:
            await self.on_assigned(owned)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            # still this generation's: what was handled is committed now
            await self._commit(revoked)
            await self._forget(revoked)

    async def _forget(self, tps: set[TopicPartition]) -> None:
        """Stop owning ``tps`` and let the owner drop their state (call it with the lock held)."""
        self.owned -= tps
        for tp in tps:
            self.committed_offsets.pop(tp, None)
        self.progress.forget_partitions(self.name, [(tp.topic, tp.partition) for tp in tps])
        if self.on_revoked is not None:
            await self.on_revoked(tps)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        """Let the owner restore its state (the consumer starts at the committed offsets).

        If that fails (the broker went away mid-restore), no record of these
        partitions may be handled on a state that was not restored: the feed
        owns nothing and its consumer is replaced (see :meth:`run`).
        """
        async with self.lock:
            try:
                await self._read_committed(assigned)
                if self.on_assigned is not None:
                    await self.on_assigned(assigned)
            except Exception:
                log.exception("%s: preparing %d partitions failed", self.name, len(assigned))
                self.owned = set()
                self._broken = True
                return
            self.owned = set(assigned)
        log.info("%s: assigned %s", self.name, sorted((tp.topic, tp.partition) for tp in assigned))

    async def _read_committed(self, tps: set[TopicPartition]) -> None:
        """Where a restart would read each of ``tps`` from (0 where nothing is committed)."""
        consumer = self.consumer
        assert consumer is not None
        for tp in tps:
            committed = await consumer.committed(tp)
            self.committed_offsets[tp] = int(committed) if committed is not None else 0

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the batch in hand (its offsets committed)."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout_s)

    # -- what the health report shows -----------------------------------
    def assigned(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self.owned)

    def highwater(self, topic: str, partition: int) -> int | None:
        return consumer_highwater(self.consumer, topic, partition)

    def committed(self, topic: str, partition: int) -> int | None:
        return self.committed_offsets.get(TopicPartition(topic, partition))


def consumer_highwater(consumer: AIOKafkaConsumer | None, topic: str, partition: int) -> int | None:
    """The end offset a consumer last saw for a partition, or None when it has none yet.

    aiokafka raises for a partition it is not assigned and returns None
    before the first fetch; a health report wants "unknown" for both.
    """
    if consumer is None:
        return None
    try:
        value = consumer.highwater(TopicPartition(topic, partition))
    except Exception:  # not assigned (any more) or not fetched yet
        return None
    return int(value) if value is not None else None
