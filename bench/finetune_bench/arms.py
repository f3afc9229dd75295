"""The stream after the fine-tuning point, every way: the champion alone, or in a duel.

An arm is one configuration's run over that traffic: what served (the
champion of the moment, so a promotion switches scorer), the final
champion's own progressive scores, and the duel's decision when there was
one. :func:`duel` runs an :class:`~online_ctr.promotion.duel.EncoderDuel` with the
settings' alpha, margin and example bounds, each arm submitted the
embeddings of its own version as the worker's promotion does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from encoder_server.client.embedder import ExampleEmbeddings
from finetune_bench.tally import Tally
from finetune_bench.worker import DEFAULTS
from finetune_bench.world import PCA, World
from online_ctr.learner import Learner
from online_ctr.promotion.duel import CALIBRATION, EncoderDuel
from simulator.labelled import OfflineExample
from simulator.ranking import EmbeddingLookup

__all__ = ["Arm", "alone", "duel", "learn"]


@dataclass
class Arm:
    """How one configuration did on the traffic after the fine-tuning point."""

    served: Tally
    final: Tally  # the final champion's own progressive scores
    champion: Learner
    champion_version: str
    lookup: EmbeddingLookup  # the final champion's embeddings
    decision: dict[str, Any] | None = None


def alone(
    learner: Learner, rest: Sequence[OfflineExample], lookup: EmbeddingLookup, version: str
) -> Arm:
    """The rest of the stream through the worker's reorder buffer, no challenger."""
    start = Tally.of(learner)
    for e in rest:
        learner.submit(e.labelled(), "", *lookup(e.impression))
    learner.advance("", math.inf)
    t = Tally.of(learner) - start
    return Arm(t, t, learner, version, lookup)


def duel(
    champion: Learner,
    rest: Sequence[OfflineExample],
    world: World,
    challenger: str,
    calibration: int = CALIBRATION,
) -> Arm:
    """The rest of the stream through an :class:`EncoderDuel` against ``challenger``."""
    d = EncoderDuel(champion, PCA)
    d.challenge(
        challenger,
        alpha=DEFAULTS.promotion_alpha,
        margin=DEFAULTS.promotion_margin,
        clip=DEFAULTS.promotion_clip,
        calibration=calibration,
        max_examples=DEFAULTS.promotion_max_examples,
        min_examples=min(DEFAULTS.promotion_min_examples, DEFAULTS.promotion_max_examples),
    )
    start = Tally.of(champion)
    served = Tally()
    since = start
    decided_at: int | None = None

    def settle(before: Learner, k: int) -> None:
        nonlocal served, since, decided_at
        if d.decisions and decided_at is None:
            decided_at = k
        if d.champion is not before:  # promoted: the challenger serves from now on
            served = served + (Tally.of(before) - since)
            since = Tally.of(d.champion)

    lookups = {v: world.lookup(v) for v in (PCA, challenger)}
    for k, e in enumerate(rest, 1):
        before = d.champion
        mine = ExampleEmbeddings(*lookups[d.champion_version or PCA](e.impression))
        theirs = (
            ExampleEmbeddings(*lookups[d.challenger_version](e.impression))
            if d.challenger_version is not None
            else None
        )
        d.submit(e.labelled(), "", mine, theirs)
        settle(before, k)
    before = d.champion
    d.advance("", math.inf)
    settle(before, len(rest))
    served = served + (Tally.of(d.champion) - since)
    version = d.champion_version or PCA
    return Arm(
        served,
        Tally.of(d.champion) - start,
        d.champion,
        version,
        lookups[version],
        _decision(d, decided_at),
    )


def _decision(d: EncoderDuel, decided_at: int | None) -> dict[str, Any]:
    """The duel's last decision (``decided_at``: the example it came at), else where it stands."""
    if d.decisions:
        record = d.decisions[-1]
        return {
            "decision": record["decision"],
            "n": record["n"],
            "at_example": decided_at,
            "decided_at": record.get("decided_at"),
            "advantage": record["mean"],
            "std": record.get("std"),
            "interval": [record["lo"], record["hi"]],
        }
    status = d.status()["comparison"] or {}
    return {
        "decision": "undecided",
        "n": status.get("n"),
        "at_example": None,
        "advantage": status.get("mean"),
        "std": status.get("std"),
        "interval": [status.get("lo"), status.get("hi")],
    }


def learn(
    learner: Learner, examples: Sequence[OfflineExample], lookup: EmbeddingLookup
) -> dict[str, float]:
    """``examples`` learned progressively, as the worker does; each prediction by impression id."""
    predictions: dict[str, float] = {}
    for e in examples:
        p = learner.predict_then_learn(e.labelled(), *lookup(e.impression))
        predictions[e.impression.impression_id] = p
    return predictions
