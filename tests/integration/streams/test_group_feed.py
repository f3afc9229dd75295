"""A feed whose partitions could not be prepared replaces its consumer and loses nothing.

``GroupFeed`` must never handle a record on state that was not restored: when
``on_assigned`` fails (the broker went away mid-restore, say), the feed owns
nothing, its consumer leaves the group, and a new one joins and is assigned
the partitions again. On the real broker: every record is handled exactly
once, and only while its partition's state is restored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bertctr.harness.kafka import publish
from bertctr.harness.stack import EmbeddedStack
from schemas.settings import Settings
from streams.health.progress import Progress
from streams.kafka.group_feed import GroupFeed, Record

pytestmark = pytest.mark.integration

MESSAGES = 120


async def test_a_failed_restore_replaces_the_consumer_and_every_record_is_handled_once(
    stack: EmbeddedStack,
) -> None:
    topic = f"gf-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    await publish(
        stack.kafka_bootstrap,
        [(topic, f"k{i}".encode(), f"v{i}".encode()) for i in range(MESSAGES)],
    )

    restored: set[TopicPartition] = set()
    attempts: list[set[TopicPartition]] = []
    undone: list[set[TopicPartition]] = []
    handled: list[tuple[int, int]] = []
    on_unrestored: list[Record] = []

    async def on_assigned(tps: set[TopicPartition]) -> None:
        attempts.append(set(tps))
        if len(attempts) == 1:
            raise ConnectionError("the broker went away mid-restore (simulated)")
        restored.update(tps)

    async def on_revoked(tps: set[TopicPartition]) -> None:
        undone.append(set(tps))
        restored.difference_update(tps)

    async def handle(records: Sequence[Record]) -> None:
        for r in records:
            if TopicPartition(r.topic, r.partition) not in restored:
                on_unrestored.append(r)
            handled.append((r.partition, r.offset))

    settings = Settings(kafka_bootstrap=stack.kafka_bootstrap, session_timeout_s=10)
    feed = GroupFeed(
        settings,
        "probe",
        f"gf-group-{uuid.uuid4().hex[:8]}",
        [topic],
        handle,
        Progress(),
        on_assigned=on_assigned,
        on_revoked=on_revoked,
    )

    def committed() -> int:
        return sum(feed.committed(topic, p) or 0 for p in (0, 1))

    task = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(90):
            while len(handled) < MESSAGES:
                await asyncio.sleep(0.1)
            # Nothing arrives twice late: once the group has committed every
            # record, no rebalance or new consumer can be handed one again.
            while committed() < MESSAGES:
                await asyncio.sleep(0.1)
    finally:
        await feed.close()
        task.cancel()
    assert len(attempts) >= 2, attempts
    assert attempts[0] == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    assert not on_unrestored, on_unrestored[:3]
    assert sorted(handled) == sorted(set(handled)), "a record was handled twice"
    assert len(handled) == MESSAGES, (len(handled), attempts, undone)
