"""Synthetic worlds with known effects for the insights tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from online_ctr.insights import GroupCount, ImageAttributes

COLOURS = ("red", "blue", "green")

#: (attributes, item quality) -> true log-odds shift of one image in one group
Truth = Callable[[ImageAttributes, float], float]


def world(
    truths: dict[str, Truth],
    *,
    n_items: int = 400,
    variants: int = 4,
    impressions: int = 3000,
    base: float = -3.0,
    seed: int = 0,
    quality_sd: float = 0.3,
    quality_from_x: float = 0.0,
) -> tuple[list[GroupCount], dict[str, ImageAttributes]]:
    """Items with variants whose ``x``, ``y`` (correlated with ``x``), ``z`` and colour differ.

    ``quality_from_x`` ties an item's appeal to the mean ``x`` of its variants
    (confounding between items).
    """
    rng = np.random.default_rng(seed)
    attributes: dict[str, ImageAttributes] = {}
    counts: list[GroupCount] = []
    for i in range(n_items):
        item = f"item-{i}"
        level = rng.normal(0.0, 1.0)
        rows = []
        for v in range(variants):
            x = level + rng.normal(0.0, 1.0)
            numeric = {
                "x": x,
                "y": 0.8 * x + 0.6 * rng.normal(),
                "z": rng.normal(),
                "flat": 1.0,
            }
            tags = {f"colour={COLOURS[int(rng.integers(len(COLOURS)))]}"}
            if rng.random() < 0.3:
                tags.add("banner")
            image = f"{item}-v{v}"
            attributes[image] = ImageAttributes(image, numeric, frozenset(tags))
            rows.append(image)
        quality = rng.normal(0.0, quality_sd) + quality_from_x * level
        for group, truth in truths.items():
            for image in rows:
                logit = base + quality + truth(attributes[image], quality)
                p = 1.0 / (1.0 + np.exp(-logit))
                clicks = int(rng.binomial(impressions, p))
                counts.append(GroupCount(group, item, image, impressions, clicks))
    return counts, attributes
