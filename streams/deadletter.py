"""Building dead-letter records: why a message was refused and where it came from."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from schemas.events import DeadLetter

__all__ = ["dead_letter", "send_dead_letter"]

log = logging.getLogger(__name__)


def dead_letter(
    *,
    reason: str,
    detail: str,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
) -> DeadLetter:
    """A :class:`DeadLetter` that keeps the original bytes, whatever they were."""
    text: str | None = None
    b64: str | None = None
    if value is not None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            b64 = base64.b64encode(value).decode("ascii")
    return DeadLetter(
        reason=reason,
        detail=detail[:2000],
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        value=text,
        value_b64=b64,
        failed_at=time.time(),
    )


async def send_dead_letter(topic: Any, reason: str, detail: str, message: Any) -> None:
    """Dead-letter a consumed Kafka message as it was, with where it came from."""
    record = dead_letter(
        reason=reason,
        detail=detail,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )
    log.warning(
        "dead-letter %s from %s[%d]@%d", reason, message.topic, message.partition, message.offset
    )
    await topic.send(key=message.key, value=record.model_dump_json().encode())
