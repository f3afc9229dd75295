"""What the simulator hands out: messages to publish and ranking requests.

Messages leave through an :class:`Outbox` ordered by simulated publish time,
because that order, not event time, is what a broker sees: a retried event
is published twice, and a click can be published before its impression.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["Outbox", "RankingRequest", "SimMessage"]

#: a logical topic name, :data:`schemas.topics.IMPRESSIONS` or :data:`~schemas.topics.CLICKS`
Topic = str
Kind = Literal["impression", "click", "duplicate", "malformed"]


@dataclass(frozen=True)
class SimMessage:
    """One message as a producer would publish it.

    ``ts`` is the simulated publish time (non-decreasing along a stream);
    the event time is inside ``value``. ``key`` is the impression id, or
    ``None`` for some malformed messages whose producer sent no key.
    """

    topic: Topic
    key: bytes | None
    value: bytes
    ts: float
    kind: Kind


@dataclass(frozen=True)
class RankingRequest:
    """A held-out request: which variant of ``item_id`` to show this segment?"""

    segment: dict[str, str]
    item_id: str
    candidates: list[str]
    position: int
    ts: float


class Outbox:
    """Messages waiting for their publish time, released in (time, arrival) order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, SimMessage]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, message: SimMessage) -> None:
        heapq.heappush(self._heap, (message.ts, self._seq, message))
        self._seq += 1

    def pop_until(self, ts: float) -> Iterator[SimMessage]:
        """Release every message due at or before ``ts``."""
        while self._heap and self._heap[0][0] <= ts:
            yield heapq.heappop(self._heap)[2]

    def drain(self) -> Iterator[SimMessage]:
        """Release everything still waiting."""
        while self._heap:
            yield heapq.heappop(self._heap)[2]
