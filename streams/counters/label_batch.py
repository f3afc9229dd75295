"""Counting labels: labelled examples -> the settled CTR counters in Redis.

Micro-batched (``take_events``) so one Redis round trip carries many labels.
While Redis is down the batch is retried with backoff and the agent does not
move on, so offsets are not committed past unapplied labels: nothing is lost,
and the dedup marker in :mod:`streams.counters.redis_counters` makes the retry harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from schemas.events import WATERMARK_RECORD, LabelledImpression, WatermarkRecord
from streams.kafka.decode import DecodeError, decode, record_kind

log = logging.getLogger(__name__)

#: Seconds between retries of a failed write grow to this bound.
MAX_BACKOFF_S = 5.0

Apply = Callable[[Sequence[LabelledImpression]], Awaitable[int]]
DeadLetterSink = Callable[[str, str, Any], Awaitable[None]]


async def apply_with_retry(apply: Apply, batch: Sequence[LabelledImpression]) -> int:
    """Apply ``batch`` until it succeeds; Redis outages only delay it."""
    delay = 0.1
    while True:
        try:
            return await apply(batch)
        except (RedisError, OSError) as exc:
            log.warning(
                "redis unavailable (%s); retrying %d labels in %.1fs", exc, len(batch), delay
            )
            await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)


async def handle_batch(events: Sequence[Any], apply: Apply, dead: DeadLetterSink) -> int:
    """Decode a batch of labelled messages, dead-letter bad ones, apply the rest."""
    good: list[LabelledImpression] = []
    for event in events:
        kind = record_kind(event.message.headers)
        if kind is not None:
            # a control record counts nothing, but a broken one is kept
            try:
                if kind != WATERMARK_RECORD:
                    raise DecodeError("schema_violation", f"unknown record kind {kind!r}")
                decode(WatermarkRecord, event.message.value)
            except DecodeError as exc:
                await dead(exc.reason, exc.detail, event.message)
            continue
        try:
            good.append(decode(LabelledImpression, event.message.value))
        except DecodeError as exc:
            await dead(exc.reason, exc.detail, event.message)
    return await apply_with_retry(apply, good)
