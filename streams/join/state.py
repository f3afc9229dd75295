"""The join's state on Kafka: a changelog topic, one partition per join partition.

Every state change of a :class:`~streams.join.book.JoinBook` (an impression
waiting, a label remembered, a dedup marker, the partition's clock) is a
record keyed by its table key, its value the new state as JSON or a
tombstone; the topic is compacted, so it keeps each key's last state. A
partition's book is rebuilt by reading its changelog partition to the end.
The format is the one Faust's table wrote, so the state of a join that ran
as a Faust table carries over.

A member that gets back a partition it held keeps its book when nobody
wrote the partition's changelog since: :meth:`JoinStateLog.unchanged`
compares the changelog's end with the offset after this member's own last
write. Otherwise (another member owned it in between) it reads it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics
from schemas.settings import Settings
from streams.kafka.emitter import Emitter
from wiring.connections import kafka_client_options

__all__ = ["JoinStateLog", "StateUpserts"]

log = logging.getLogger(__name__)

#: table key -> (partition, new state, or None to delete it)
StateUpserts = Mapping[str, tuple[int, dict[str, Any] | None]]

#: records per read while restoring
RESTORE_BATCH = 5000


class JoinStateLog:
    """Writes the join's state changes and reads a partition's state back."""

    def __init__(self, settings: Settings, emitter: Emitter) -> None:
        self.settings = settings
        self.emitter = emitter
        self.topic = topics.join_changelog(settings.app_id, settings.topic_prefix)
        #: partition -> the changelog offset after this member's last write or read
        self.end: dict[int, int] = {}

    async def write(self, upserts: StateUpserts) -> None:
        """Write ``upserts`` and wait until the broker has them all."""
        pending = []
        partitions = []
        for key, (partition, state) in upserts.items():
            value = json.dumps(state).encode() if state is not None else None
            fut = await self.emitter.send(
                self.topic, value, key=json.dumps(key).encode(), partition=partition
            )
            pending.append(fut)
            partitions.append(partition)
        written = await self.emitter.flush_all(pending)
        for partition, meta in zip(partitions, written, strict=True):
            self.end[partition] = max(self.end.get(partition, 0), int(meta.offset) + 1)

    async def ends(self, partitions: set[int]) -> dict[int, int]:
        """The changelog's end offset of each of ``partitions``."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            found = await consumer.end_offsets(tps)
            return {tp.partition: int(offset) for tp, offset in found.items()}
        finally:
            await consumer.stop()

    def unchanged(self, partition: int, end: int) -> bool:
        """Whether this member's view of ``partition`` is still the changelog's."""
        return self.end.get(partition) == end

    async def restore(self, partitions: set[int]) -> dict[int, dict[str, Any]]:
        """Each partition's state: table key -> its last value, tombstoned keys gone."""
        states: dict[int, dict[str, Any]] = {p: {} for p in partitions}
        if not partitions:
            return states
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            todo = {tp for tp in tps if ends[tp] > 0}
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=RESTORE_BATCH)
                for tp, records in batch.items():
                    state = states[tp.partition]
                    for record in records:
                        key = json.loads(record.key) if record.key is not None else None
                        if not isinstance(key, str):
                            continue
                        if record.value is None:
                            state.pop(key, None)
                        else:
                            state[key] = json.loads(record.value)
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
            for tp in tps:
                self.end[tp.partition] = int(ends[tp])
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        log.info(
            "join state restored: %s",
            {p: len(s) for p, s in sorted(states.items())},
        )
        return states

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **kafka_client_options(self.settings),
        )
