"""aiokafka helpers used by tests the way an outside producer/consumer would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.events import RECORD_HEADER


async def publish(
    bootstrap: str, messages: Sequence[tuple[str, bytes | None, bytes | None]]
) -> None:
    """Publish (topic, key, value) in order and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float, settle_s: float = 3.0
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``expected`` messages came, then
    keep reading ``settle_s`` more to catch any extra (wrong) output.

    Control records (header ``bertctr-record``: the join's watermarks on
    ``labelled``) are skipped, as the README tells consumers of labels to.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settle_until: float | None = None
    try:
        while True:
            now = loop.time()
            if settle_until is None and len(out) >= expected:
                settle_until = now + settle_s
            if now > (settle_until if settle_until is not None else deadline):
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend(json.loads(r.value) for r in records if not is_control(r.headers))
    finally:
        await consumer.stop()
    return out


def is_control(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether a record's headers mark it as a control record, not an event."""
    return any(name == RECORD_HEADER for name, _ in headers or ())
