"""What ``bertctr demo`` runs: its knobs and their defaults, in one place.

Kept apart from :mod:`bertctr.demo` so the CLI can show these defaults
without importing the demo's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import SimConfig, world_config

__all__ = ["DemoConfig"]


@dataclass
class DemoConfig:
    """What ``bertctr demo`` runs; the CLI's defaults are these."""

    events: int = 50_000
    seed: int = 7
    #: the simulated world (:data:`simulator.config.WORLDS`): ``small`` is 40
    #: items; ``catalogue`` a shop with launches and cold start
    world: str = "small"
    #: items of the world (``None``: the world's own number)
    items: int | None = None
    #: one worker: each worker learns its own model from the partitions it
    #: owns, and the demo judges one model (multi-worker learning is later work)
    workers: int = 1
    partitions: int = 4
    timeout_s: float = 900.0
    ranking_requests: int = 3000
    #: simulated seconds per wall second; 0 publishes flat out
    speed: float = 200.0
    #: 5/s spreads 50k impressions over ~2.8 simulated hours, several
    #: attribution windows, so negatives and positives interleave as in production
    impressions_per_s: float = 5.0
    #: serve the encoders on Triton and learn with image and title embeddings
    encoders: bool = True
    #: dimensions of the PCA heads fitted on the catalogue (see bench_embeddings);
    #: the image head is fitted on multi-scale features, within items
    image_dim: int = 8
    text_dim: int = 8
    #: run one fine-tuning cycle (``bertctr finetune``) while the traffic flows
    #: (needs ``encoders``): once this share of the impressions is learned,
    #: the job trains on what is labelled so far, and the stream decides
    finetune: bool = True
    finetune_at: float = 0.4
    #: the demo's first part has ~500 clicks; the production default is higher
    finetune_min_clicks: int = 100

    def sim_config(self, attribution_window_s: float | None = None) -> SimConfig:
        """The simulator's config for this demo (the tests rebuild its stream with it).

        On a world with launches they are spread over twice the run's simulated
        span rather than a day, so that about half of the launching items go live
        while the demo runs and the rest are left for the cold-start ranking.
        """
        overrides: dict[str, float | int | bool] = {
            "seed": self.seed,
            "impressions_per_s": self.impressions_per_s,
        }
        if attribution_window_s is not None:
            overrides["attribution_window_s"] = attribution_window_s
        if self.items is not None:
            overrides["n_items"] = self.items
        if self.world != "small":
            overrides["launch_span_s"] = 2.0 * self.events / self.impressions_per_s
        return world_config(self.world, **overrides)
