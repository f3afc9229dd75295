"""The catalogue: items with visual variants, each described by attributes.

Attributes are what the renderer draws and what hidden segment preferences
react to, so an encoder that sees the pixels has something real to find.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CATEGORIES = ("shoe", "bag", "lamp", "mug", "chair")
COLOURS = {
    "red": (200, 40, 40),
    "blue": (40, 70, 200),
    "green": (40, 160, 70),
    "yellow": (230, 200, 40),
    "black": (30, 30, 30),
    "white": (235, 235, 235),
}
ADJECTIVES = ("classic", "modern", "compact", "premium", "everyday", "vintage", "bold", "soft")


@dataclass(frozen=True)
class CatalogueEntry:
    """One (item, variant): the unit a ranking service chooses between."""

    item_id: str
    variant: str
    image_id: str
    title: str
    category: str
    quality: float
    attributes: dict[str, float | str] = field(default_factory=dict)

    @property
    def colour(self) -> str:
        return str(self.attributes["colour"])

    def numeric(self) -> dict[str, float]:
        """The numeric visual attributes (brightness, clutter, scale, text)."""
        return {k: float(v) for k, v in self.attributes.items() if k != "colour"}


def build_catalogue(rng: np.random.Generator, n_items: int, variants: int) -> list[CatalogueEntry]:
    """Items share category and title words; variants differ in every visual attribute."""
    colours = list(COLOURS)
    entries = []
    for i in range(n_items):
        category = CATEGORIES[i % len(CATEGORIES)]
        quality = float(rng.normal(0.0, 0.3))
        adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        for v in range(variants):
            colour = colours[int(rng.integers(len(colours)))]
            attributes: dict[str, float | str] = {
                "colour": colour,
                "brightness": float(rng.uniform(0.2, 1.0)),
                "clutter": float(rng.uniform(0.0, 1.0)),
                "scale": float(rng.uniform(0.3, 1.0)),
                "text_overlay": float(rng.random() < 0.4),
            }
            entries.append(
                CatalogueEntry(
                    item_id=f"item-{i:03d}",
                    variant=f"v{v}",
                    image_id=f"img-{i:03d}-v{v}",
                    title=f"{adjective} {colour} {category}",
                    category=category,
                    quality=quality,
                    attributes=attributes,
                )
            )
    return entries
