"""Building dead-letter records: why a message was refused and where it came from."""

from __future__ import annotations

import base64
import time

from schemas.events import DeadLetter


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
