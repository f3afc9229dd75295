"""One logged impression as off-policy evaluation sees it.

The context is the audience segment and the item; the actions are the
item's candidate variants. Beside what was shown, its propensity and
whether it was clicked, a unit carries the reward model's prediction
``q(x, a)`` for every candidate (the CTR model's click probability, for the
doubly robust estimator and the greedy target) and, when the logger knows
it (the simulator does), the logging policy's full distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LoggedImpression"]


@dataclass(frozen=True)
class LoggedImpression:
    """A logged choice among ``candidates`` in the context ``(segment, item_id)``.

    ``predicted`` and ``logging`` (if given) are aligned with ``candidates``.
    """

    segment: str
    item_id: str
    candidates: tuple[str, ...]
    shown: str
    propensity: float
    reward: float
    predicted: tuple[float, ...]
    #: the logging policy's probability of each candidate; ``None``: unknown
    #: (the support is then inferred from what was shown, see ``terms.prepare``)
    logging: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.shown not in self.candidates:
            raise ValueError(f"shown variant {self.shown!r} is not among {self.candidates}")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates repeat: {self.candidates}")
        if not (0.0 < self.propensity <= 1.0):
            raise ValueError(f"propensity must be in (0, 1], got {self.propensity}")
        if len(self.predicted) != len(self.candidates):
            raise ValueError("predicted must have one value per candidate")
        if not all(math.isfinite(q) and 0.0 <= q <= 1.0 for q in self.predicted):
            raise ValueError("predicted values must be probabilities")
        if self.logging is not None and len(self.logging) != len(self.candidates):
            raise ValueError("logging must have one probability per candidate")

    @property
    def context(self) -> tuple[str, str]:
        return (self.segment, self.item_id)

    @property
    def shown_index(self) -> int:
        return self.candidates.index(self.shown)
