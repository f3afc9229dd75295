"""Ranking lift by the simulator's truth: how good is a ranker's top pick?

Pure and exact: every candidate's true click probability is known, so the
lift of a ranker is the true CTR of the variant it puts first, over the true
CTR of a random variant, on held-out requests. Any object with the
learner's ``predict(impression, image, title)`` can be judged; the oracle's
lift (always the best variant) is the ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from schemas.events import Impression
from simulator.traffic import Cohort, Simulator

__all__ = ["EmbeddingLookup", "Scorer", "Vector", "ranking_lifts"]

Vector = tuple[float, ...]
#: an impression's (image, title) embeddings, as the model saw them
EmbeddingLookup = Callable[[Impression], tuple[Vector | None, Vector | None]]


class Scorer(Protocol):
    """What is ranked: :class:`online_ctr.learner.Learner` is one."""

    def predict(
        self, impression: Impression, image: Vector | None = None, title: Vector | None = None, /
    ) -> float: ...


def ranking_lifts(
    sim: Simulator,
    scorer: Scorer,
    n: int,
    seed: int,
    embeddings: EmbeddingLookup | None = None,
    cohort: Cohort = "all",
) -> tuple[float, float]:
    """(model lift, oracle lift) of top-1 variant choice over a random variant.

    ``embeddings`` gives each candidate the image and title embeddings the
    model learned with (``None``: it learned without); ``cohort`` picks the
    items asked about (``cold``: items no impression has shown yet, where
    only the content can tell the variants apart).
    """
    chosen, best, random_ = [], [], []
    for req in sim.ranking_requests(n, seed, cohort):
        truth = [
            sim.true_ctr(req.segment, req.item_id, v, req.position, req.ts) for v in req.candidates
        ]
        scores = []
        for v in req.candidates:
            imp = sim.make_impression(req, v)
            image, title = embeddings(imp) if embeddings is not None else (None, None)
            scores.append(scorer.predict(imp, image, title))
        chosen.append(truth[int(np.argmax(scores))])
        best.append(max(truth))
        random_.append(float(np.mean(truth)))
    base = float(np.mean(random_))
    return float(np.mean(chosen)) / base - 1.0, float(np.mean(best)) / base - 1.0
