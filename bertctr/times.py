"""Times on the command line: durations (``90s``, ``30m``, ``6h``, ``1d``) and points in time.

One home for what ``bertctr finetune``, ``bertctr ope`` and ``bertctr report``
accept, so ``--since 2h`` or ``--since 2026-01-05T10:00:00Z`` means the same to
each. Pure (no heavy imports), so a CLI can check an option before it loads
anything.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["is_duration", "parse_duration", "parse_time"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``6h``, ``1d`` or a plain number of seconds.

    >>> parse_duration("2h"), parse_duration("45")
    (7200.0, 45.0)
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 6h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def is_duration(text: str) -> bool:
    """Whether ``text`` is a duration with its unit (a bare number is a point in time).

    >>> is_duration("30m"), is_duration("1700000000")
    (True, False)
    """
    match = _DURATION.fullmatch(text)
    return match is not None and bool(match.group(2))


def parse_time(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC if it names no zone).

    >>> parse_time("1700000000"), parse_time("2026-01-05T10:00:00Z")
    (1700000000.0, 1767607200.0)
    """
    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.strip())
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
