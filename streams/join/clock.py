"""Event time of one join partition: the join's time rules and its watermark.

The watermark is the newest event time of the partition's slower input
(impressions or clicks) minus ``max_lateness_s``; an input not yet seen holds
it back until known empty, and an idle input's time advances at
``idle_clock_rate`` (see :class:`PartitionClock` and :mod:`streams.join.book`,
which expires and labels by it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas import topics
from schemas.settings import default_of

__all__ = ["CLICK_INPUT", "IMPRESSION_INPUT", "JoinConfig", "PartitionClock"]

#: the inputs of a partition's clock, named after their topics (persisted in clocks)
IMPRESSION_INPUT = topics.IMPRESSIONS
CLICK_INPUT = topics.CLICKS


@dataclass(frozen=True)
class JoinConfig:
    """Time rules of the join, in event seconds (see the module docstring)."""

    window_s: float = default_of("attribution_window_s")
    max_lateness_s: float = default_of("max_lateness_s")
    #: the setting's default (None) means "the window"
    orphan_grace_s: float = default_of("attribution_window_s")
    horizon_s: float = default_of("late_click_horizon_s")
    idle_after_s: float = default_of("idle_after_s")
    idle_clock_rate: float = default_of("idle_clock_rate")
    max_future_skew_s: float = default_of("max_future_skew_s")


class PartitionClock:
    """Event-time watermark of one partition: the slowest input, with bounded lateness.

    Each input topic (impressions, clicks) keeps its own newest event time,
    and the watermark is the minimum over the inputs, each minus
    ``max_lateness_s`` (Flink's per-input watermarks). One clock over both
    topics would let a consumer that reads a partition's impressions far
    ahead of its clicks expire impressions whose in-window clicks it simply
    has not read yet, turning them into late corrections.

    An input that has not been seen yet holds the watermark at minus
    infinity until it is known to be empty: not behind (see :meth:`hold`)
    for ``idle_after_s`` wall seconds. Only then is it left out of the
    minimum, as Flink leaves out an idle source. Taking the minimum over the
    inputs *seen so far* instead would let the first burst of impressions on
    a new partition expire them before the first click was read.

    A seen input with no events for ``idle_after_s`` wall seconds is idle:
    its time advances at ``idle_clock_rate`` event seconds per wall second,
    so a topic that goes quiet (no clicks for a while) never holds expiry
    back for good. Idle time counts from the input's last event, from the
    last :meth:`hold`, from :meth:`restore` after a restart, or, for an
    input never seen, from the first time the clock is consulted.
    """

    def __init__(
        self, config: JoinConfig, expected: Iterable[str] = (IMPRESSION_INPUT, CLICK_INPUT)
    ) -> None:
        self._config = config
        #: the inputs that must be seen (or known empty) before time can pass
        self.expected = tuple(expected)
        #: newest event time of each input seen, by input name
        self.inputs: dict[str, float] = {}
        self._last_wall: dict[str, float] = {}
        self.watermark = float("-inf")

    @property
    def max_event_ts(self) -> float | None:
        """The newest event time of any input (``None`` before the first event)."""
        return max(self.inputs.values()) if self.inputs else None

    def restore(
        self,
        inputs: dict[str, float],
        watermark: float | None,
        wall: float,
    ) -> None:
        """Resume from a persisted clock (after a restart or rebalance) at wall time ``wall``."""
        for name, ts in inputs.items():
            self.inputs[name] = max(self.inputs.get(name, ts), ts)
            self._last_wall[name] = wall
        if watermark is not None:
            self.watermark = max(self.watermark, watermark)

    def observe(self, ts: float, wall: float, source: str = IMPRESSION_INPUT) -> None:
        """Record an event of input ``source``; ``wall`` is the processing wall-clock time."""
        if source not in self.inputs or ts > self.inputs[source]:
            self.inputs[source] = ts
        self._last_wall[source] = wall
        self.advance(wall)

    def hold(self, wall: float, inputs: Iterable[str]) -> None:
        """These inputs are not idle, only behind: restart their idle timers."""
        for name in inputs:
            self._last_wall[name] = wall

    def advance(self, wall: float) -> float:
        """Recompute the watermark at wall time ``wall``; it never goes back."""
        c = self._config
        candidates = []
        for name in (*self.expected, *(n for n in self.inputs if n not in self.expected)):
            idle_for = wall - self._last_wall.setdefault(name, wall) - c.idle_after_s
            ts = self.inputs.get(name)
            if ts is not None:
                candidates.append(ts - c.max_lateness_s + max(0.0, idle_for) * c.idle_clock_rate)
            elif idle_for < 0:
                candidates.append(float("-inf"))  # unseen, not yet known to be empty
        if candidates:
            self.watermark = max(self.watermark, min(candidates))
        return self.watermark
