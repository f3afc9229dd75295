"""Building dead-letter records: why a message was refused and where it came from.

Two paths dead-letter in a worker: the join gathers its refusals into a
batch (counted in :class:`~streams.join.agent.JoinCounts`), and the other
agents call the worker's ``dead`` function (:meth:`streams.kafka.emitter.Emitter.dead_message`),
which counts them in a :class:`DeadLetterTally`. The health report carries
both (``dead_letters``), so every reason is counted once.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.events import DeadLetter

__all__ = ["DeadLetterTally", "dead_letter"]

log = logging.getLogger(__name__)


@dataclass
class DeadLetterTally:
    """Messages dead-lettered outside the join, by reason, since the worker started."""

    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def merged(self, *others: Mapping[str, int]) -> dict[str, int]:
        """This tally plus ``others`` (the join's), by reason, sorted."""
        out = dict(self.by_reason)
        for other in others:
            for reason, n in dict(other).items():
                out[reason] = out.get(reason, 0) + n
        return dict(sorted(out.items()))


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
