"""The worker's one Kafka producer: labels, join state, dead letters and ticks.

A plain aiokafka producer, not Faust's: a batch's records are handed over
together (``send`` only appends to the producer's buffer) and the caller
then waits for all of them at once (:meth:`Emitter.flush_all`), so a batch
of 500 labels costs one wait, not 500. ``acks=all``: a record counts as
written only once every in-sync replica has it, which is what lets a batch's
offsets be committed after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.settings import Settings
from streams.kafka.deadletter import dead_letter
from wiring.connections import kafka_client_options

__all__ = ["Emitter"]

log = logging.getLogger(__name__)

#: how long the producer lets a batch fill before sending it (ms)
LINGER_MS = 0
#: the most bytes one request to one partition carries
MAX_BATCH_BYTES = 512 * 1024


class Emitter:
    """Sends records and dead letters; start it before use, stop it last."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dead_letter_topic = settings.topic(topics.DEAD_LETTER)
        #: made on start: aiokafka binds a producer to the running event loop
        self._producer: AIOKafkaProducer | None = None
        self._started = False
        self._closed = False
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Connect; safe to call from several tasks (the first one connects)."""
        async with self._starting:
            if self._closed:
                raise RuntimeError("the worker's producer is stopped (the worker is stopping)")
            if not self._started:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    acks="all",
                    linger_ms=LINGER_MS,
                    max_batch_size=MAX_BATCH_BYTES,
                    **kafka_client_options(self.settings),
                )
                await producer.start()
                self._producer = producer
                self._started = True

    async def stop(self) -> None:
        """Flush and disconnect; later sends raise (a stopping worker writes nothing more)."""
        producer, self._producer = self._producer, None
        self._started = False
        self._closed = True
        if producer is not None:
            await producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves once the broker has it."""
        if self._producer is None:
            await self.start()
        assert self._producer is not None
        fut: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, partition=partition, headers=list(headers or []) or None
        )
        return fut

    async def dead_letter(
        self,
        reason: str,
        detail: str,
        *,
        topic: str,
        partition: int | None,
        offset: int | None,
        key: bytes | None,
        value: bytes | None,
    ) -> asyncio.Future[Any]:
        """Queue the dead letter of a refused message, keeping its bytes and its origin."""
        record = dead_letter(
            reason=reason,
            detail=detail,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
        )
        log.warning("dead-letter %s from %s[%s]@%s", reason, topic, partition, offset)
        return await self.send(self.dead_letter_topic, record.model_dump_json().encode(), key=key)

    async def dead_message(self, reason: str, detail: str, message: Any) -> None:
        """Dead-letter a consumed message as it was, and wait until the broker has it."""
        fut = await self.dead_letter(
            reason,
            detail,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
        )
        await fut

    @staticmethod
    async def flush_all(pending: Sequence[asyncio.Future[Any]]) -> list[Any]:
        """Wait until the broker has every queued record; raises if one failed."""
        if not pending:
            return []
        return list(await asyncio.gather(*pending))
