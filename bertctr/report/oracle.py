"""The oracle's NE over a run: the simulator's true click probabilities, scored as the model is.

Only a simulation knows the truth, so the demo computes this curve and
hands it to the report; ``bertctr report`` on real traffic shows the model
alone. The sums are the ones :class:`~online_ctr.metrics.GroupMetrics`
keeps; read every ``every`` examples, they give the curve in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from online_ctr.metrics import GroupMetrics, entropy

__all__ = ["oracle_ne_curve"]


def oracle_ne_curve(
    pairs: Iterable[tuple[float, bool]], points: int = 200
) -> list[tuple[int, float]]:
    """(examples, NE so far) of (true p, clicked) pairs in learning order; ~``points`` of them.

    >>> curve = oracle_ne_curve([(0.5, True), (0.5, False)] * 50, points=4)
    >>> [(n, round(ne, 3)) for n, ne in curve]  # p = 0.5 is the average here: NE 1
    [(25, 1.001), (50, 1.0), (75, 1.0), (100, 1.0)]
    """
    seen = list(pairs)
    every = max(1, -(-len(seen) // max(1, points)))
    group = GroupMetrics()
    curve = []
    for i, (p, clicked) in enumerate(seen, start=1):
        group.update(p, clicked)
        if i % every == 0 or i == len(seen):
            ctr = group.positives / group.count
            if 0.0 < ctr < 1.0:
                curve.append((i, group.sum_logloss / group.count / entropy(ctr)))
    return curve
