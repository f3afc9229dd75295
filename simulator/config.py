"""Simulation knobs, with defaults that make learning needed and measurable.

The defaults give a mean CTR of a few percent, variants whose best choice per
segment lifts CTR by roughly a third over a random one, and a realistic dose
of delivery faults. Everything that shapes the stream is here, so one
``SimConfig`` (and its seed) names one exact, reproducible stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_START_TS", "WORLDS", "SimConfig", "world_config"]

#: 2026-01-01T00:00:00Z: a fixed start so runs with one seed are identical.
DEFAULT_START_TS = 1_767_225_600.0


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulated traffic; same config, same stream.

    Rates of faults are probabilities per event: ``duplicate_rate`` per
    published impression or click, ``out_of_order_rate`` per click,
    ``malformed_rate`` per impression (a malformed message goes to either
    topic).
    """

    seed: int = 7
    #: draws the catalogue (items, attributes, pixels) from another seed than the
    #: audience and the traffic: one shop, many audiences; ``None`` uses ``seed``
    catalogue_seed: int | None = None
    n_items: int = 40
    variants_per_item: int = 4
    #: simulated users; each belongs to one segment for the whole run
    n_users: int = 20_000
    #: mean arrival rate of impressions, per simulated second (Poisson)
    impressions_per_s: float = 50.0
    start_ts: float = DEFAULT_START_TS
    attribution_window_s: float = 1800.0

    #: intercept of the true click logit (sets the overall CTR level)
    base_logit: float = -3.7
    #: position bias: probability scales by ``1 / (1 + decay * position)``
    position_decay: float = 0.3
    #: success probability of the geometric distribution of positions
    position_p: float = 0.35
    max_position: int = 20

    #: median and log-sd of the lognormal body of click delays (seconds)
    click_delay_median_s: float = 20.0
    click_delay_sigma: float = 1.5
    #: share of clicks drawn from the Pareto tail that starts at the window
    late_click_share: float = 0.03
    late_tail_alpha: float = 1.2
    #: longest click delay; ``None`` means four attribution windows
    max_click_delay_s: float | None = None

    duplicate_rate: float = 0.01
    #: longest gap between a producer's first send and its retry
    duplicate_max_gap_s: float = 5.0
    out_of_order_rate: float = 0.02
    #: only clicks this soon after their impression can overtake it (a
    #: lagging impression producer, not a lost one)
    reorder_max_s: float = 60.0
    malformed_rate: float = 0.001

    image_size: int = 224
    #: scales how strongly taste groups react to the images' brightness,
    #: clutter, object scale and text overlay (the within-item visual
    #: differences): 1 is the default world; larger makes the image decide
    #: more of each click, for tests and benchmarks of visual learning
    visual_taste: float = 1.0

    #: Zipf exponent of item popularity over a seeded random ranking of the
    #: items; 0 draws every live item equally often (the small world)
    popularity_zipf: float = 0.0
    #: share of the catalogue that launches after ``start_ts`` instead of before
    launch_share: float = 0.0
    #: the launching items go live one by one, evenly over this span
    launch_span_s: float = 86_400.0
    #: share of impressions that go to items younger than ``young_age_s``
    #: while any exist (new products get shelf space: about a fifth in shops)
    young_traffic_share: float = 0.2
    young_age_s: float = 86_400.0
    #: add the subtle hidden properties (a small corner banner, a striped
    #: texture, the background's colour harmony with the product), each crossed
    #: with the taste groups at today's strength; off keeps the small world's
    #: catalogue, images and stream byte for byte
    subtle_tastes: bool = False
    #: how each impression's variant is chosen: ``none`` (uniformly, no
    #: propensity logged: the default stream byte for byte), ``uniform`` (the
    #: same draw, propensity ``1 / variants_per_item`` logged) or ``thompson``
    #: (Thompson sampling on the running counts per segment and item, through
    #: the allocator given to the simulator; see ``simulator.logging_policy``)
    logging_policy: Literal["none", "uniform", "thompson"] = "none"
    #: a Thompson cell's probabilities are recomputed at most this many impressions apart
    logging_refresh: int = 64

    def __post_init__(self) -> None:
        positive = {
            "n_items": self.n_items,
            "variants_per_item": self.variants_per_item,
            "n_users": self.n_users,
            "impressions_per_s": self.impressions_per_s,
            "attribution_window_s": self.attribution_window_s,
            "click_delay_median_s": self.click_delay_median_s,
            "click_delay_sigma": self.click_delay_sigma,
            "late_tail_alpha": self.late_tail_alpha,
            "reorder_max_s": self.reorder_max_s,
            "image_size": self.image_size,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        rates = {
            "late_click_share": self.late_click_share,
            "duplicate_rate": self.duplicate_rate,
            "out_of_order_rate": self.out_of_order_rate,
            "malformed_rate": self.malformed_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.logging_policy not in ("none", "uniform", "thompson"):
            raise ValueError(f"unknown logging_policy {self.logging_policy!r}")
        if self.logging_refresh < 1:
            raise ValueError("logging_refresh must be >= 1")
        if self.visual_taste < 0:
            raise ValueError("visual_taste must be >= 0")
        if self.popularity_zipf < 0:
            raise ValueError("popularity_zipf must be >= 0")
        for name, value in {
            "launch_share": self.launch_share,
            "young_traffic_share": self.young_traffic_share,
        }.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not (self.launch_span_s > 0 and self.young_age_s > 0):
            raise ValueError("launch_span_s and young_age_s must be positive")
        if round(self.launch_share * self.n_items) >= self.n_items:
            raise ValueError("launch_share leaves no item live at start_ts")
        if not 0.0 < self.position_p <= 1.0:
            raise ValueError("position_p must be in (0, 1]")
        if self.start_ts < 0 or self.position_decay < 0 or self.duplicate_max_gap_s < 0:
            raise ValueError("start_ts, position_decay and duplicate_max_gap_s must be >= 0")
        if self.max_position < 0:
            raise ValueError("max_position must be >= 0")
        if self.click_delay_cap_s <= self.attribution_window_s:
            raise ValueError("max_click_delay_s must exceed attribution_window_s")

    @property
    def click_delay_cap_s(self) -> float:
        """The longest click delay actually used (see ``max_click_delay_s``)."""
        if self.max_click_delay_s is None:
            return 4.0 * self.attribution_window_s
        return self.max_click_delay_s


#: named worlds: ``small`` is the default 40-item world; ``catalogue`` is a shop
#: of realistic size (2,000 items x 4 variants, Zipf popularity, 30% of the
#: items launching over a day, a fifth of the traffic on items under a day old,
#: the subtle tastes), where the image must carry what ids cannot
WORLDS: dict[str, dict[str, float | int | bool]] = {
    "small": {},
    "catalogue": {
        "n_items": 2000,
        "popularity_zipf": 1.0,
        "launch_share": 0.3,
        "launch_span_s": 86_400.0,
        "young_traffic_share": 0.2,
        "subtle_tastes": True,
    },
}


def world_config(world: str, **overrides: float | int | bool) -> SimConfig:
    """The :data:`WORLDS` entry ``world`` as a config, with ``overrides`` on top.

    >>> world_config("catalogue", seed=3).n_items
    2000
    """
    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; known: {', '.join(WORLDS)}")
    return SimConfig(**{**WORLDS[world], **overrides})  # type: ignore[arg-type]
