"""Simulation knobs, with defaults that make learning needed and measurable."""

from __future__ import annotations

from dataclasses import dataclass

#: 2026-01-01T00:00:00Z: a fixed start so runs with one seed are identical.
DEFAULT_START_TS = 1_767_225_600.0


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the simulated traffic; same config, same stream."""

    seed: int = 7
    n_items: int = 40
    variants_per_item: int = 4
    impressions_per_s: float = 5.0
    start_ts: float = DEFAULT_START_TS
    attribution_window_s: float = 1800.0
    base_logit: float = -3.6
    position_decay: float = 0.3
    #: share of clicks whose delay is drawn from the long (late) tail
    late_click_share: float = 0.04
    duplicate_rate: float = 0.01
    out_of_order_rate: float = 0.02
    malformed_rate: float = 0.001
    image_size: int = 160
