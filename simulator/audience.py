"""Segments and their hidden preferences: the ground truth of who clicks what.

A segment is device x geo x taste group. Taste groups carry most of the
signal (colour, brightness, clutter, scale, text overlay and category
preferences), devices and geos shift the base rate, and position decays it.
The true click probability is a logistic function of all of that, so it is
known exactly for every impression (for oracle metrics and ranking).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalogue import CATEGORIES, COLOURS, CatalogueEntry

DEVICES = ("mobile", "desktop", "tablet")
GEOS = ("DE", "US", "FR")
TASTES = ("t0", "t1", "t2", "t3")
NUMERIC = ("brightness", "clutter", "scale", "text_overlay")


@dataclass(frozen=True)
class Preferences:
    """Hidden weights; drawn once per simulator from its seed."""

    device_bias: dict[str, float]
    geo_bias: dict[str, float]
    colour: dict[tuple[str, str], float]
    category: dict[tuple[str, str], float]
    numeric: dict[tuple[str, str], float]
    mobile_scale: float


def draw_preferences(rng: np.random.Generator) -> Preferences:
    return Preferences(
        device_bias={d: float(rng.normal(0, 0.2)) for d in DEVICES},
        geo_bias={g: float(rng.normal(0, 0.15)) for g in GEOS},
        colour={(t, c): float(rng.normal(0, 0.55)) for t in TASTES for c in COLOURS},
        category={(t, c): float(rng.normal(0, 0.35)) for t in TASTES for c in CATEGORIES},
        numeric={(t, n): float(rng.normal(0, 0.8)) for t in TASTES for n in NUMERIC},
        mobile_scale=0.8,
    )


def segment_weights(
    rng: np.random.Generator,
) -> tuple[list[dict[str, str]], np.ndarray[Any, np.dtype[np.float64]]]:
    """All segments and how often each appears (not uniform, like real traffic)."""
    segments = [{"device": d, "geo": g, "taste": t} for d in DEVICES for g in GEOS for t in TASTES]
    weights = rng.dirichlet(np.full(len(segments), 3.0))
    return segments, weights


def true_logit(
    prefs: Preferences,
    base: float,
    position_decay: float,
    segment: dict[str, str],
    entry: CatalogueEntry,
    position: int,
) -> float:
    taste, device = segment["taste"], segment["device"]
    logit = base + entry.quality
    logit += prefs.device_bias[device] + prefs.geo_bias[segment["geo"]]
    logit += prefs.colour[(taste, entry.colour)] + prefs.category[(taste, entry.category)]
    for name, value in entry.numeric().items():
        logit += prefs.numeric[(taste, name)] * (value - 0.5)
    if device == "mobile":
        logit += prefs.mobile_scale * (float(entry.attributes["scale"]) - 0.6)
    logit += math.log(1.0 / (1.0 + position_decay * position))
    return logit


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
