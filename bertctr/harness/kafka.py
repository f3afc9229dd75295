"""Publishing to and reading from Kafka the way an outside producer or consumer would.

The demo, the benchmarks and the integration tests all publish events and
read the ``labelled`` and ``dead-letter`` topics back; they do it through
these few functions, so "how long to wait", "what to skip" and "how to pace"
mean the same everywhere. Control records (header ``bertctr-record``: the
join's watermarks on ``labelled``) are skipped, as the README tells consumers
of labels to.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.events import RECORD_HEADER

__all__ = [
    "Message",
    "Progress",
    "ReadResult",
    "consume",
    "is_control",
    "publish",
    "publish_paced",
    "read_topics",
]

#: (topic, key, value), as published
Message = tuple[str, bytes | None, bytes | None]
#: told how many messages are sent so far (a progress bar's ``update_to``)
Progress = Callable[[int], None]
#: how many messages are sent before waiting for their acks
ACK_EVERY = 5_000
#: how many messages are sent between two calls of a publisher's ``progress``
PROGRESS_EVERY = 500


def is_control(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether a record's headers mark it as a control record, not an event."""
    return any(name == RECORD_HEADER for name, _ in headers or ())


async def publish(
    bootstrap: str,
    messages: Iterable[Message],
    *,
    linger_ms: int = 10,
    one_by_one: bool = False,
    progress: Progress | None = None,
) -> int:
    """Publish in order, flat out, and wait for every ack; return the count.

    Sends are pipelined (acks awaited every :data:`ACK_EVERY`), which is how
    a real producer bursts, and keeps per-partition order. ``one_by_one``
    waits for each ack before the next send, so even messages on different
    topics reach the broker in the order given. ``progress`` is told the
    count sent every :data:`PROGRESS_EVERY` messages, and once all are acked.
    """
    return await publish_paced(
        bootstrap,
        ((0.0, m) for m in messages),
        speed=0.0,
        linger_ms=linger_ms,
        one_by_one=one_by_one,
        progress=progress,
    )


async def publish_paced(
    bootstrap: str,
    timed: Iterable[tuple[float, Message]],
    *,
    speed: float,
    linger_ms: int = 10,
    one_by_one: bool = False,
    progress: Progress | None = None,
) -> int:
    """Publish ``(event time, message)`` pairs, ``speed`` event seconds per wall second.

    ``speed`` 0 publishes flat out. Pacing keeps the two input topics' event
    times close together, as in production, so expiry can run inside a
    narrow lateness bound and negatives interleave with positives.
    ``progress`` as in :func:`publish`.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await producer.start()
    sent = 0
    try:
        start_wall = time.monotonic()
        start_ts: float | None = None
        newest = float("-inf")
        pending = []
        for ts, (topic, key, value) in timed:
            if speed > 0:
                start_ts = ts if start_ts is None else start_ts
                newest = max(newest, ts)
                delay = start_wall + (newest - start_ts) / speed - time.monotonic()
                if delay > 0.005:
                    await asyncio.sleep(delay)
            if one_by_one:
                await producer.send_and_wait(topic, value, key=key)
            else:
                pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if sent % ACK_EVERY == 0:
                await asyncio.gather(*pending)
                pending.clear()
            if progress is not None and sent % PROGRESS_EVERY == 0:
                progress(sent)
        await asyncio.gather(*pending)
        if progress is not None:
            progress(sent)
    finally:
        await producer.stop()
    return sent


@dataclass
class ReadResult:
    """Events read per topic (decoded JSON), control records left out."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: wall time (monotonic) the last event arrived
    last_at: float | None = None

    def of(self, topic: str) -> list[dict[str, Any]]:
        return self.events.get(topic, [])


async def read_topics(
    bootstrap: str,
    topics: Sequence[str],
    done: Callable[[ReadResult], bool],
    timeout_s: float,
    settle_s: float = 3.0,
    progress: Callable[[ReadResult], None] | None = None,
) -> ReadResult:
    """Read ``topics`` from the start until ``done(result)``, then ``settle_s`` more.

    The settling read catches output that should not be there (a duplicate,
    an extra label); the caller decides whether reaching the timeout without
    ``done`` is an error (tests assert on what came, the demo raises).
    """
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    result = ReadResult(events={t: [] for t in topics})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settle_until: float | None = None
    try:
        while True:
            now = loop.time()
            if settle_until is None and done(result):
                settle_until = now + settle_s
            if now > (settle_until if settle_until is not None else deadline):
                break
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                events = [json.loads(r.value) for r in records if not is_control(r.headers)]
                if events:
                    result.events[tp.topic].extend(events)
                    result.last_at = time.monotonic()
            if progress is not None:
                progress(result)
    finally:
        await consumer.stop()
    return result


async def consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float, settle_s: float = 3.0
) -> list[dict[str, Any]]:
    """The events of one topic: read until ``expected`` came, then settle."""
    result = await read_topics(
        bootstrap, [topic], lambda r: len(r.of(topic)) >= expected, timeout_s, settle_s
    )
    return result.of(topic)
