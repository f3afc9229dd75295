"""``--since``: how far back a report looks, as a duration or a point in time.

A duration (``90s``, ``30m``, ``2h``, ``1d``) is measured back from each
source's own clock: the counters' newest impression (event time: a replay
of simulated time stays in its own time) for CTR, the wall clock for the
model's history. A point in time (epoch seconds, or ISO 8601 such as
``2026-01-05T10:00:00Z``) is compared with both clocks as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from bertctr.times import is_duration, parse_duration, parse_time

__all__ = ["Since", "parse_since"]


@dataclass(frozen=True)
class Since:
    """A window start: ``duration_s`` back from a clock, or epoch time ``at`` (neither: all)."""

    duration_s: float | None = None
    at: float | None = None

    def start(self, clock: float) -> float | None:
        """The window's start against ``clock``; None: everything kept."""
        if self.duration_s is not None:
            return clock - self.duration_s
        return self.at

    def minutes(self, clock: float, most: int) -> int:
        """Minutes of buckets that end at ``clock`` and cover the window (1..``most``).

        >>> Since(duration_s=1800).minutes(10_000.0, 120), Since().minutes(10_000.0, 120)
        (30, 120)
        """
        start = self.start(clock)
        if start is None:
            return most
        return max(1, min(most, math.ceil((clock - start) / 60.0)))

    def describe(self) -> str:
        if self.duration_s is not None:
            return f"the last {self.duration_s:g} s of each source's clock"
        if self.at is not None:
            return "since " + datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return "everything kept (CTR: the last 2 hours of buckets)"


def parse_since(text: str) -> Since:
    """A ``--since`` value; raises ``ValueError`` for anything else.

    >>> parse_since("30m"), parse_since("1700000000").at
    (Since(duration_s=1800.0, at=None), 1700000000.0)
    >>> parse_since("2026-01-05T10:00:00Z").at
    1767607200.0
    """
    if is_duration(text):
        return Since(duration_s=parse_duration(text))
    try:
        value = parse_time(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration (90s, 30m, 2h, 1d), epoch seconds "
            "or an ISO 8601 time"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"--since {text!r} is not a finite time")
    return Since(at=value)
