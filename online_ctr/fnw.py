"""Fake-negative weighting (FNW) and how a late click is learned.

The join labels an impression negative when its attribution window closes
without a click; a click that comes later is emitted as a *late correction*
(``late=True``). It is learned as a new positive example: the negative that
was learned before stays learned (no history is rewritten, nothing is
unlearned), exactly as in Ktena et al. 2019 ("Addressing delayed feedback
for continuous training with neural networks in CTR prediction").

FNW makes that stream unbiased when *every* impression is first learned as
a negative and each click re-learned as a positive: it weights positives by
``1 + p`` and negatives by ``(1 - p)(1 + p)``, with ``p`` the model's own
prediction held constant (no gradient flows through the weight).

When to switch it on: only when most positives have a fake negative before
them (a join that emits negatives at once, or a window much shorter than
click delays). Our join waits ``attribution_window_s`` (30 min) and then
emits ~97% of positives with no negative before them; weighting those by
``1 + p`` drives predictions towards the odds ``p / (1 - p)``: on the
simulator FNW over-predicted and did not improve the log loss
(``docs/measurements.md``). So :class:`~online_ctr.learner.Learner` leaves
it off by default, and a late correction is learned with weight 1.

>>> FNW().weight(0.2, True), round(FNW().weight(0.2, False), 2)
(1.2, 0.96)
>>> FNW(enabled=False).weight(0.2, False)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import LabelledImpression

__all__ = ["FNW", "fnw_weight"]


def fnw_weight(p: float, clicked: bool) -> float:
    """Fake-negative weight of one example given the (constant) prediction ``p``."""
    return 1.0 + p if clicked else (1.0 - p) * (1.0 + p)


@dataclass(frozen=True)
class FNW:
    """How a labelled example is learned: its label and its sample weight.

    Parameters
    ----------
    enabled
        Weight examples as in FNW; when off every weight is 1.
    """

    enabled: bool = True

    @staticmethod
    def label(labelled: LabelledImpression) -> bool:
        """The label to learn: a late correction is a positive, like any click."""
        return bool(labelled.clicked or labelled.late)

    def weight(self, p: float, clicked: bool) -> float:
        """Sample weight of an example given the prediction ``p`` made before learning it."""
        return fnw_weight(p, clicked) if self.enabled else 1.0
