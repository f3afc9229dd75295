"""Publishing simulated traffic to Kafka, paced in simulated time or flat out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from simulator import SimMessage


async def publish_messages(
    bootstrap: str,
    topic_prefix: str,
    messages: Sequence[SimMessage],
    speed: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Publish in order; ``speed`` > 0 replays ``speed`` simulated seconds per wall second.

    Pacing matters for the join: it keeps the two topics' event times close
    together, as in production, so expiry can run inside a narrow lateness
    bound and negatives interleave with positives instead of arriving last.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all")
    await producer.start()
    try:
        start_wall = time.monotonic()
        start_sim = messages[0].ts if messages else 0.0
        sim_now = start_sim
        pending = []
        for i, msg in enumerate(messages, 1):
            sim_now = max(sim_now, msg.ts)
            if speed > 0:
                delay = start_wall + (sim_now - start_sim) / speed - time.monotonic()
                if delay > 0.005:
                    await asyncio.sleep(delay)
            pending.append(
                await producer.send(f"{topic_prefix}{msg.topic}", msg.value, key=msg.key)
            )
            if i % 5_000 == 0:
                await asyncio.gather(*pending)
                pending.clear()
                if progress is not None:
                    progress(f"published {i}/{len(messages)} messages")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
