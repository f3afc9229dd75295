"""Progressive metrics as sums, so a stretch of traffic is a difference of two readings."""

from __future__ import annotations

from dataclasses import dataclass

from online_ctr.learner import Learner
from online_ctr.metrics import entropy

__all__ = ["Tally"]


@dataclass(frozen=True)
class Tally:
    """The additive part of progressive metrics, so a stretch of traffic is a difference."""

    count: float = 0.0
    positives: float = 0.0
    logloss: float = 0.0

    @classmethod
    def of(cls, learner: Learner) -> Tally:
        g = learner.metrics.overall
        return cls(g.count, g.positives, g.sum_logloss)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.count + other.count,
            self.positives + other.positives,
            self.logloss + other.logloss,
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.count - other.count,
            self.positives - other.positives,
            self.logloss - other.logloss,
        )

    @property
    def ne(self) -> float:
        ctr = self.positives / self.count
        return self.logloss / self.count / entropy(ctr)
