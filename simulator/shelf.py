"""Which item an impression shows: long-tailed popularity and items launching over time.

A shop's traffic is not uniform over its catalogue: a few items take most
impressions (Zipf), and new products launch every day and get shelf space
while they are new, although nobody has clicked them yet. That is where a
model has only pixels and a title to go on, so it is where an image encoder
can pay. The launching items are the catalogue's last ones, going live one
by one evenly over ``launch_span_s``; items launched before ``start_ts`` are
old from the start. Items not yet live at the end of a run are the cold-start
items a ranking evaluation can use: never seen by any model.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from simulator.config import SimConfig

__all__ = ["Shelf"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class Shelf:
    """Draws the item of each impression from the items live at its time.

    >>> shelf = Shelf(SimConfig(n_items=10, launch_share=0.5), np.random.default_rng(0))
    >>> shelf.live(SimConfig().start_ts), shelf.launch_ts[5] > SimConfig().start_ts
    (5, True)
    """

    def __init__(self, config: SimConfig, rng: np.random.Generator) -> None:
        self.config = config
        n = config.n_items
        n_launching = round(config.launch_share * n)
        self.first_launched = n - n_launching
        steps = (np.arange(n_launching) + 0.5) / max(n_launching, 1)
        #: when each item goes live (simulated seconds); old items long before the start
        self.launch_ts: list[float] = [config.start_ts - 10.0 * config.young_age_s] * (
            n - n_launching
        ) + [round(config.start_ts + float(s) * config.launch_span_s, 3) for s in steps]
        # popularity by a random rank, so it is not tied to index or category
        ranks = rng.permutation(n) + 1
        weights: FloatArray = ranks.astype(np.float64) ** -config.popularity_zipf
        #: the items' popularity weights, normalised over the whole catalogue
        self.popularity: FloatArray = weights / weights.sum()
        self._cumulative: FloatArray = np.concatenate(([0.0], np.cumsum(self.popularity)))

    def live(self, ts: float) -> int:
        """How many items are live at ``ts`` (they are the first ones by index)."""
        return bisect.bisect_right(self.launch_ts, ts)

    def young(self, ts: float) -> range:
        """The indices of the items live at ``ts`` and younger than ``young_age_s``."""
        return range(self.live(ts - self.config.young_age_s), self.live(ts))

    def unlaunched(self, ts: float) -> range:
        """The indices of the items not yet live at ``ts``: the cold-start items."""
        return range(self.live(ts), self.config.n_items)

    def draw(self, rng: np.random.Generator, ts: float) -> int:
        """The index of the item an impression at ``ts`` shows.

        With the ``young_traffic_share`` it is a young item, if any, else an
        older live one; either way by popularity among those.
        """
        young = self.young(ts)
        if len(young) and rng.random() < self.config.young_traffic_share:
            return self.pick(rng, young)
        return self.pick(rng, range(0, young.start) if young.start > 0 else young)

    def pick(self, rng: np.random.Generator, items: range) -> int:
        """One index of ``items`` (a non-empty range) by popularity."""
        low, high = self._cumulative[items.start], self._cumulative[items.stop]
        index = int(np.searchsorted(self._cumulative, rng.uniform(low, high), side="right")) - 1
        return min(max(index, items.start), items.stop - 1)
