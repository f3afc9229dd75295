"""Creating topics explicitly, before any worker starts.

Tansu (and a Kafka with auto-create on) would otherwise create a topic on
first use with the broker's default partition count. Impressions, clicks,
join ticks and the join state's changelog must have the same count: partition
``p`` of each belongs to join partition ``p``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas import topics
from schemas.settings import Settings
from wiring.connections import kafka_client_options

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)

#: the changelog keeps each key's last state; older ones may be compacted away
COMPACTED = {"cleanup.policy": "compact"}


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every bertctr topic that does not exist yet; return those created."""
    if not settings.kafka_bootstrap:
        raise ValueError("BERTCTR_KAFKA_BOOTSTRAP must be set")
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, **kafka_client_options(settings)
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            changelog = topics.join_changelog(settings.app_id, settings.topic_prefix)
            wanted = [settings.topic(name) for name in topics.ALL_TOPICS] + [changelog]
            missing = [name for name in wanted if name not in existing]
            if missing:
                # TopicAlreadyExists: another process won the race; fine.
                with contextlib.suppress(TopicAlreadyExistsError):
                    replicas = settings.replication_factor
                    await admin.create_topics(
                        [
                            NewTopic(
                                n,
                                settings.partitions,
                                replicas,
                                topic_configs=COMPACTED if n == changelog else None,
                            )
                            for n in missing
                        ]
                    )
                log.info("created topics %s with %d partitions", missing, settings.partitions)
            return missing
        except KafkaError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("broker not ready (%s); retrying", exc)
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
