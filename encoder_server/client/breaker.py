"""A circuit breaker, so an encoder outage costs one timeout, not thousands.

When Triton is down every call would otherwise wait out its deadline and its
retries, and the stream would spend its time waiting instead of backing off.
After ``failures`` consecutive failures the breaker *opens*: calls are
refused at once (the caller raises and backs off) until ``reset_s`` has
passed. Then it is *half-open*: exactly one trial call goes through; its
success closes the breaker, its failure opens it for another ``reset_s``.

Pure and clock-injected, so it is tested without sleeping. A trial whose
outcome is never reported (its caller was cancelled) would leave the breaker
half-open forever; so the trial slot is handed out again once ``reset_s``
has passed without an outcome.

Examples
--------
>>> now = [0.0]
>>> breaker = CircuitBreaker(failures=2, reset_s=5.0, clock=lambda: now[0])
>>> breaker.record_failure(); breaker.record_failure()
>>> breaker.state, breaker.allow()
('open', False)
>>> now[0] = 5.0
>>> breaker.allow(), breaker.state, breaker.allow()
(True, 'half_open', False)
>>> breaker.record_success()
>>> breaker.state
'closed'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures → half-open after ``reset_s``.

    Parameters
    ----------
    failures
        Consecutive failures that open the breaker (at least 1).
    reset_s
        How long an open breaker refuses calls before it lets one trial through.
    clock
        Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be positive")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None
        #: how many times the breaker has opened (for status pages and tests)
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` (refusing) or ``half_open`` (a trial may pass or is out)."""
        if self._opened_at is None:
            return "closed"
        if self._trial_at is not None or self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def allow(self) -> bool:
        """Whether a call may be attempted now; in half-open, true for one trial only."""
        if self._opened_at is None:
            return True
        now = self._clock()
        if self._trial_at is None:
            if now - self._opened_at < self.reset_s:
                return False
        elif now - self._trial_at < self.reset_s:
            return False  # the trial is out; its outcome decides
        self._trial_at = now
        return True

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        if self._opened_at is not None:
            log.info("circuit breaker closed after a successful trial")
        self._consecutive = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        """A call failed: count it; open (or re-open) the breaker when due."""
        self._consecutive += 1
        reopen = self._trial_at is not None
        if reopen or (self._opened_at is None and self._consecutive >= self.failures):
            self._opened_at = self._clock()
            self._trial_at = None
            self.opened_count += 1
            log.warning(
                "circuit breaker open after %d consecutive failures; next trial in %.1fs",
                self._consecutive,
                self.reset_s,
            )
