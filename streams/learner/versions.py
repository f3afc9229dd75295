"""Every worker hears every encoder version announced on ``encoder-versions``.

A Faust agent would share the topic's partitions across the consumer group,
so only one worker would hear of a new version. The announcements are few
and every worker's learner needs all of them, so each worker reads the topic
itself, from the beginning and without a group, and keeps the newest
announcement per encoder. Reading from the beginning also means a restarted
worker knows the versions announced while it was down; the learner's duel
remembers which ones it has already judged, so none is judged twice.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import topics
from schemas.events import EncoderVersion
from schemas.settings import Settings
from wiring.connections import kafka_client_options

__all__ = ["VersionWatcher"]

log = logging.getLogger(__name__)


class VersionWatcher:
    """Reads ``encoder-versions`` without a consumer group; never blocks the caller."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(topics.ENCODER_VERSIONS)
        self._consumer: Any = None
        #: the newest announcement per encoder model name
        self.latest: dict[str, EncoderVersion] = {}

    async def poll(self) -> list[EncoderVersion]:
        """Announcements read since the last poll (none while the broker is away)."""
        if not self.settings.kafka_bootstrap:
            return []
        try:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    self.topic,
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    **kafka_client_options(self.settings),
                    group_id=None,
                    auto_offset_reset="earliest",
                    enable_auto_commit=False,
                )
                await consumer.start()
                self._consumer = consumer
            batch = await self._consumer.getmany(timeout_ms=0, max_records=1000)
        except KafkaError as exc:
            log.warning("cannot read %s yet: %s", self.topic, exc)
            await self.close()
            return []
        out = []
        for records in batch.values():
            for record in records:
                try:
                    announced = EncoderVersion.model_validate_json(record.value)
                except (ValidationError, ValueError, TypeError) as exc:
                    log.warning("ignoring a malformed announcement on %s: %s", self.topic, exc)
                    continue
                self.latest[announced.model] = announced
                out.append(announced)
        return out

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()
            except KafkaError as exc:
                log.warning("closing the %s reader: %s", self.topic, exc)
