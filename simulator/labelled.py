"""The simulated stream as labelled examples, for benchmarks and model tests.

Offline comparisons (our model against Vowpal Wabbit, with and without
embeddings) need every model to see the same examples in the order the
stream's learner sees them: impression-time order, the order its reorder
buffer releases. Labels are the simulator's own clicks (any click, however
late, makes a positive), duplicates and malformed messages are left out, and
each example keeps its true click probability for the oracle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas.events import Impression, LabelledImpression
from schemas.topics import CLICKS, IMPRESSIONS
from simulator.traffic import Simulator

__all__ = ["OfflineExample", "labelled_stream"]


@dataclass(frozen=True)
class OfflineExample:
    """One labelled impression with its ground truth."""

    impression: Impression
    clicked: bool
    true_p: float

    def labelled(self) -> LabelledImpression:
        """As the join would emit it (label time = impression time)."""
        return LabelledImpression.from_impression(
            self.impression,
            clicked=self.clicked,
            click_delay_s=None,
            late=False,
            labelled_at=self.impression.ts,
        )


def labelled_stream(sim: Simulator, n: int) -> list[OfflineExample]:
    """The next ``n`` impressions of ``sim``, labelled, in impression-time order.

    >>> from simulator import SimConfig
    >>> stream = labelled_stream(Simulator(SimConfig(seed=1, n_items=5)), 200)
    >>> len(stream), all(0 < e.true_p < 1 for e in stream)
    (200, True)
    """
    messages = list(sim.messages(n))
    clicked = {
        json.loads(m.value)["impression_id"]
        for m in messages
        if m.topic == CLICKS and m.kind == "click"
    }
    seen: set[str] = set()
    out = []
    for m in messages:
        if m.topic == IMPRESSIONS and m.kind == "impression":
            imp = Impression.model_validate_json(m.value)
            if imp.impression_id in seen:
                continue
            seen.add(imp.impression_id)
            truth = sim.true_p[imp.impression_id]
            out.append(OfflineExample(imp, imp.impression_id in clicked, truth))
    out.sort(key=lambda e: e.impression.ts)
    return out
