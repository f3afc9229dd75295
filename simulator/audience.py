"""Who looks, and what makes them click: the ground truth of the simulator.

A segment is device x geo x taste group. Users belong to one segment each and
differ in how active they are. The true click probability is a logistic
function of:

* the item's hidden quality and the segment's base rate (device, geo, and a
  mild time-of-day rhythm per device);
* visual preferences everyone shares (e.g. brighter, less cluttered shots);
* preferences of the taste group over colour, category, brightness, clutter,
  object scale and text overlay, which is what makes the best variant differ
  between segments, so a model must learn segment x variant, not just
  variant;
* in worlds with the subtle attributes, the taste group's reaction to a small
  banner, a striped texture and colour harmony (no shared preference: each
  matters to some audiences only, as the subtle details of real shots do);
* a larger object on mobile (small screens);
* position bias, multiplying the probability by ``1 / (1 + decay * position)``.

All weights are drawn once from the seed and never shown to the learner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.catalogue import (
    CATEGORIES,
    COLOURS,
    NUMERIC_ATTRIBUTES,
    SUBTLE_ATTRIBUTES,
    CatalogueEntry,
)

__all__ = [
    "ATTRIBUTE_CENTRE",
    "DEVICES",
    "DIURNAL_AMPLITUDE",
    "GEOS",
    "PEAK_HOUR",
    "TASTES",
    "Audience",
    "Preferences",
    "draw_preferences",
    "sigmoid",
    "true_logit",
]

DEVICES = ("mobile", "desktop", "tablet")
GEOS = ("US", "DE", "FR", "BR")
TASTES = ("t0", "t1", "t2", "t3")
#: hour of day (UTC) at which each device's traffic clicks most
PEAK_HOUR = {"mobile": 20.0, "desktop": 14.0, "tablet": 21.0}
DIURNAL_AMPLITUDE = 0.15
#: attribute values the preferences are centred on, so weights do not shift the base rate
ATTRIBUTE_CENTRE = {
    "brightness": 0.575,
    "clutter": 0.5,
    "scale": 0.65,
    "text_overlay": 0.4,
    "banner": 0.3,
    "texture": 0.5,
    "harmony": 0.5,
}

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Preferences:
    """Hidden logit weights; drawn once per simulator from its seed."""

    device_bias: dict[str, float]
    geo_bias: dict[str, float]
    global_colour: dict[str, float]
    global_numeric: dict[str, float]
    taste_colour: dict[tuple[str, str], float]
    taste_category: dict[tuple[str, str], float]
    taste_numeric: dict[tuple[str, str], float]
    mobile_scale: float
    taste_subtle: dict[tuple[str, str], float]


def draw_preferences(rng: np.random.Generator, visual_taste: float = 1.0) -> Preferences:
    """Draw the hidden weights (scales tuned for a 20-60% oracle ranking lift).

    ``visual_taste`` scales the taste groups' weights on the numeric visual
    attributes after they are drawn, so every other weight (and the stream
    of a seed at the default 1.0) is unchanged.
    """
    return Preferences(
        device_bias={d: float(rng.normal(0, 0.2)) for d in DEVICES},
        geo_bias={g: float(rng.normal(0, 0.15)) for g in GEOS},
        global_colour={c: float(rng.normal(0, 0.1)) for c in COLOURS},
        global_numeric={
            "brightness": float(rng.normal(0.3, 0.1)),
            "clutter": float(rng.normal(-0.3, 0.1)),
            "scale": float(rng.normal(0.2, 0.1)),
            "text_overlay": float(rng.normal(0.0, 0.1)),
        },
        taste_colour={(t, c): float(rng.normal(0, 0.35)) for t in TASTES for c in COLOURS},
        taste_category={(t, c): float(rng.normal(0, 0.3)) for t in TASTES for c in CATEGORIES},
        taste_numeric={
            (t, n): visual_taste * float(rng.normal(0, 0.45))
            for t in TASTES
            for n in NUMERIC_ATTRIBUTES
        },
        mobile_scale=0.4,
        # drawn last so that every weight above is the same with or without them
        taste_subtle={
            (t, n): visual_taste * float(rng.normal(0, 0.45))
            for t in TASTES
            for n in SUBTLE_ATTRIBUTES
        },
    )


def true_logit(
    prefs: Preferences,
    base: float,
    position_decay: float,
    segment: dict[str, str],
    entry: CatalogueEntry,
    position: int,
    ts: float,
) -> float:
    """The log-odds of a click (see the module docstring for the terms)."""
    taste, device = segment["taste"], segment["device"]
    logit = base + entry.quality + prefs.device_bias[device] + prefs.geo_bias[segment["geo"]]
    hour = (ts % 86_400.0) / 3600.0
    logit += DIURNAL_AMPLITUDE * math.cos(2 * math.pi * (hour - PEAK_HOUR[device]) / 24.0)
    logit += prefs.global_colour[entry.colour] + prefs.taste_colour[(taste, entry.colour)]
    logit += prefs.taste_category[(taste, entry.category)]
    for name, value in entry.numeric().items():
        centred = value - ATTRIBUTE_CENTRE[name]
        if name in prefs.global_numeric:
            logit += (prefs.global_numeric[name] + prefs.taste_numeric[(taste, name)]) * centred
        else:
            logit += prefs.taste_subtle[(taste, name)] * centred
    if device == "mobile":
        logit += prefs.mobile_scale * (float(entry.attributes["scale"]) - ATTRIBUTE_CENTRE["scale"])
    logit += -math.log1p(position_decay * position)
    return logit


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class Audience:
    """Users with a fixed segment each and heavy-tailed activity.

    Segment shares are uneven (as in real traffic) and a few users produce
    many impressions, so per-user and per-segment counts look realistic.
    """

    def __init__(self, rng: np.random.Generator, n_users: int) -> None:
        self.segments: list[dict[str, str]] = [
            {"device": d, "geo": g, "taste": t} for d in DEVICES for g in GEOS for t in TASTES
        ]
        self.segment_share: FloatArray = rng.dirichlet(np.full(len(self.segments), 2.0))
        self.user_segment = rng.choice(len(self.segments), size=n_users, p=self.segment_share)
        activity = rng.lognormal(0.0, 1.0, size=n_users)
        self._activity_cdf: FloatArray = np.cumsum(activity / activity.sum())

    def draw(self, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
        """One (user_id, segment) for the next impression; the segment is a fresh dict."""
        user = int(np.searchsorted(self._activity_cdf, rng.random(), side="right"))
        user = min(user, len(self.user_segment) - 1)
        return f"u{user}", dict(self.segments[int(self.user_segment[user])])
