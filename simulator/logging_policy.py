"""A randomised logging policy: which variant an impression shows, and with what probability.

Off-policy evaluation needs impressions whose variant was drawn at random
with a known probability (``Impression.propensity``). ``uniform`` draws
every variant alike (the simulator's own draw, so the stream is the
default's plus the propensities); ``thompson`` draws by Thompson sampling
on the simulator's running counts per (segment, item), the way
``POST /ab/{item_id}/allocate`` does on the live counters. The simulator is
pure and sits beside ``online_ctr``, not above it, so the Thompson maths
comes in as an :data:`Allocator` (``online_ctr.ope.thompson_probabilities``
is one); clicks are counted the moment they are drawn (no settling delay).

A cell's probabilities are recomputed at its 1st, 2nd, 4th, 8th ...
impression and then every ``refresh`` impressions (a server computes them
once per refresh too, see ``online_ctr.ab.allocation``); the propensity
logged is always the probability the draw was made with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["LOGGING_POLICIES", "Allocator", "LoggedChoice", "LoggingPolicy", "ThompsonLogger"]

LoggingPolicy = Literal["none", "uniform", "thompson"]
LOGGING_POLICIES: tuple[LoggingPolicy, ...] = ("none", "uniform", "thompson")
#: ``(variant, impressions, clicks)`` arms in, the probability of showing each out
Allocator = Callable[[Sequence[tuple[str, int, int]]], Mapping[str, float]]


@dataclass(frozen=True)
class LoggedChoice:
    """One randomised impression: its context, the draw, and what came of it (ground truth)."""

    impression_id: str
    segment: dict[str, str]
    item_id: str
    position: int
    ts: float
    candidates: tuple[str, ...]
    #: the logging policy's probability of each candidate (sums to 1)
    probabilities: tuple[float, ...]
    shown: str
    propensity: float
    clicked: bool


@dataclass
class _Cell:
    counts: list[list[int]]
    probabilities: tuple[float, ...] = ()
    seen: int = 0
    next_refresh: int = 0


@dataclass
class ThompsonLogger:
    """Thompson sampling per (segment, item) on running counts, through ``allocator``."""

    allocator: Allocator
    refresh: int = 64
    _cells: dict[tuple[str, str], _Cell] = field(default_factory=dict)

    def choose(
        self, rng: np.random.Generator, segment_key: str, item_id: str, variants: Sequence[str]
    ) -> tuple[int, tuple[float, ...]]:
        """The index of the variant to show, drawn with ``rng``, and every variant's probability."""
        cell = self._cells.get((segment_key, item_id))
        if cell is None:
            cell = self._cells[(segment_key, item_id)] = _Cell([[0, 0] for _ in variants])
        if cell.seen >= cell.next_refresh:
            arms = [(v, n, c) for v, (n, c) in zip(variants, cell.counts, strict=True)]
            probs = self.allocator(arms)
            p = np.array([probs[v] for v in variants], dtype=np.float64)
            cell.probabilities = tuple(float(x) for x in p / p.sum())
            s = cell.seen
            cell.next_refresh = 1 if s == 0 else min(2 * s, s + self.refresh)
        return int(rng.choice(len(variants), p=cell.probabilities)), cell.probabilities

    def observe(self, segment_key: str, item_id: str, index: int, clicked: bool) -> None:
        """Count the impression (and its click) of the variant at ``index``."""
        cell = self._cells[(segment_key, item_id)]
        cell.seen += 1
        cell.counts[index][0] += 1
        cell.counts[index][1] += int(clicked)
