"""The catalogue: items with visual variants, each described by attributes.

Attributes are what the renderer draws and what hidden segment preferences
react to, so an encoder that sees the pixels has something real to find. The
title names the category, the variant's colour and a style adjective, the
way shop titles do; brightness, clutter, scale and the text overlay are only
visible in the image, so ids and titles alone cannot explain every click.
The :data:`SUBTLE_ATTRIBUTES` (a small corner banner, a striped texture, the
background's colour harmony with the product) are details real audiences
react to that a generic encoder sees but not necessarily in its top
directions; they exist only in worlds that ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ADJECTIVES",
    "CATEGORIES",
    "COLOURS",
    "NUMERIC_ATTRIBUTES",
    "SAME_COLOUR_P",
    "SUBTLE_ATTRIBUTES",
    "CatalogueEntry",
    "build_catalogue",
    "image_id",
    "item_id",
]

CATEGORIES = ("shoe", "bag", "lamp", "mug", "chair")
#: colour name -> RGB of the product at full brightness
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 45),
    "blue": (40, 75, 205),
    "green": (45, 160, 75),
    "yellow": (235, 200, 40),
    "orange": (240, 130, 30),
    "purple": (130, 55, 170),
    "black": (30, 30, 30),
    "white": (240, 240, 240),
}
ADJECTIVES = ("classic", "modern", "compact", "premium", "everyday", "vintage", "bold", "soft")
#: the numeric visual attributes, each in [0, 1]; ``text_overlay`` is 0 or 1
NUMERIC_ATTRIBUTES = ("brightness", "clutter", "scale", "text_overlay")
#: the subtle visual attributes, each in [0, 1]; ``banner`` and ``texture`` are 0 or 1
SUBTLE_ATTRIBUTES = ("banner", "texture", "harmony")
#: chance that a non-first variant keeps the item's main colour
SAME_COLOUR_P = 0.3


@dataclass(frozen=True)
class CatalogueEntry:
    """One (item, variant): the unit a ranking service chooses between.

    ``attributes`` holds ``colour`` (a name from :data:`COLOURS`) and the
    :data:`NUMERIC_ATTRIBUTES`. ``quality`` is the item's hidden appeal to
    everyone, shared by its variants.
    """

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
        """The numeric visual attributes (the subtle ones too, where drawn), by name."""
        names = (*NUMERIC_ATTRIBUTES, *SUBTLE_ATTRIBUTES)
        return {name: float(self.attributes[name]) for name in names if name in self.attributes}


def item_id(index: int) -> str:
    return f"item-{index:03d}"


def image_id(index: int, variant: int) -> str:
    return f"img-{index:03d}-v{variant}"


def build_catalogue(
    rng: np.random.Generator,
    n_items: int,
    variants_per_item: int,
    subtle: np.random.Generator | None = None,
) -> list[CatalogueEntry]:
    """Items share category, adjective and quality; variants differ visually.

    Variant ``v0`` shows the item's main colour; the others usually recolour
    it, and every variant draws its own brightness, clutter, scale and text
    overlay, which is what makes the choice of variant matter. With a
    ``subtle`` generator each variant also draws the :data:`SUBTLE_ATTRIBUTES`
    from it, leaving every other draw (so the small world) unchanged.
    """
    colours = list(COLOURS)
    entries: list[CatalogueEntry] = []
    for i in range(n_items):
        category = CATEGORIES[i % len(CATEGORIES)]
        quality = float(rng.normal(0.0, 0.3))
        adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        main_colour = colours[int(rng.integers(len(colours)))]
        for v in range(variants_per_item):
            if v == 0 or rng.random() < SAME_COLOUR_P:
                colour = main_colour
            else:
                colour = colours[int(rng.integers(len(colours)))]
            attributes: dict[str, float | str] = {
                "colour": colour,
                "brightness": round(float(rng.uniform(0.15, 1.0)), 4),
                "clutter": round(float(rng.uniform(0.0, 1.0)), 4),
                "scale": round(float(rng.uniform(0.3, 1.0)), 4),
                "text_overlay": float(rng.random() < 0.4),
            }
            if subtle is not None:
                attributes["banner"] = float(subtle.random() < 0.3)
                attributes["texture"] = float(subtle.random() < 0.5)
                attributes["harmony"] = round(float(subtle.uniform(0.0, 1.0)), 4)
            entries.append(
                CatalogueEntry(
                    item_id=item_id(i),
                    variant=f"v{v}",
                    image_id=image_id(i, v),
                    title=f"{adjective} {colour} {category}",
                    category=category,
                    quality=quality,
                    attributes=attributes,
                )
            )
    return entries
