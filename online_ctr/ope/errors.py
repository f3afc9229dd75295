"""Why an off-policy estimate is refused: too little data, or no overlap.

A number with a tight-looking interval is worse than no number when the
logs cannot support it, so :func:`~online_ctr.ope.terms.prepare` raises one
of these with a ``reason`` written for the person who asked.
"""

from __future__ import annotations

__all__ = ["NoOverlap", "OpeRefused", "TooFewImpressions"]


class OpeRefused(ValueError):
    """The logged impressions cannot support an estimate; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooFewImpressions(OpeRefused):
    """Fewer propensity-carrying impressions than the configured minimum."""

    def __init__(self, n: int, minimum: int) -> None:
        super().__init__(
            f"only {n} logged impressions carry a propensity; at least {minimum} are needed "
            "(log the propensity POST /ab/{item_id}/allocate returns, or wait for more traffic)"
        )
        self.n = n
        self.minimum = minimum


class NoOverlap(OpeRefused):
    """The target policy puts its mass where the logging policy never acts."""

    def __init__(self, policy: str, unsupported_share: float, detail: str = "") -> None:
        super().__init__(
            f"no overlap: policy {policy!r} puts {100 * unsupported_share:.1f}% of its "
            "choices on variants the logging policy never showed in those contexts"
            + (f" ({detail})" if detail else "")
            + "; the logs say nothing about them"
        )
        self.policy = policy
        self.unsupported_share = unsupported_share
