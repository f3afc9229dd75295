"""One segment group's regression design: standardised attributes, tags, item contrasts.

Rows are images, each with its clicks out of its impressions in the group.
Numeric attributes are standardised over the group's images, so every
effect reads "per +1 standard deviation". A tag family whose levels give
every image exactly one (``colour=red``, ``colour=blue``, ...) is effect
coded: each level is compared with the average level (a reference level
would make every effect depend on which one was picked), and the reported
contrast of the coded-out level is minus the sum of the others. Other tags
are 0/1 (present vs absent).

With ``within_items`` each column is split into the item's mean and the
image's deviation from it (Mundlak's device): the deviation's coefficient
is the effect *between variants of one item*, so an item's appeal (premium
products shot with better light) cannot pose as the light's effect; the
means soak up what differs between items. Items shown with one image
inform only the means.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from online_ctr.insights.attributes import ImageAttributes
from online_ctr.insights.groups import GroupCount

__all__ = ["Contrast", "Design", "build_design"]

log = logging.getLogger(__name__)

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
Kind = Literal["numeric", "tag"]


@dataclass(frozen=True)
class Contrast:
    """What one reported effect is, as a combination of the fitted coefficients."""

    attribute: str
    kind: Kind
    #: the attribute's standard deviation over the group's images (numeric only)
    sd: float | None
    #: images of the group that carry the tag (tags); every image (numeric)
    images_with: int
    vector: FloatArray


@dataclass(frozen=True)
class Design:
    """The regression of one group, ready to fit."""

    group: str
    exog: FloatArray
    #: (clicks, impressions - clicks) per row
    endog: FloatArray
    #: the row's item as an integer code (the clusters of the standard errors)
    items: IntArray
    contrasts: list[Contrast]
    impressions: int
    clicks: int
    images: int
    n_items: int
    #: images of the group without attributes (left out of the fit)
    unmeasured: int


def _numeric(rows: Sequence[ImageAttributes]) -> dict[str, FloatArray]:
    """Standardised columns of the numeric attributes every row has, varying ones only."""
    names = set.intersection(*(set(r.numeric) for r in rows))
    out = {}
    for name in sorted(names):
        values = np.array([float(r.numeric[name]) for r in rows])
        sd = float(values.std())
        if not np.all(np.isfinite(values)) or not sd > 1e-12:
            log.debug("attribute %s left out: constant or not finite", name)
            continue
        out[name] = (values - values.mean()) / sd
    return out


def _tag_columns(
    rows: Sequence[ImageAttributes], min_images: int
) -> tuple[dict[str, FloatArray], dict[str, dict[str, float]]]:
    """(columns, each reported tag's weights on those columns).

    A partitioning family of K levels gives K-1 effect-coded columns (the
    last level is -1 on each) and K reported tags; any other tag one 0/1
    column, if at least ``min_images`` images have it and some do not.
    """
    n = len(rows)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        for tag in r.tags:
            counts[tag] += 1
    families: dict[str, list[str]] = defaultdict(list)
    for tag in counts:
        family, sep, _ = tag.partition("=")
        if sep:
            families[family].append(tag)
    partitioned: set[str] = set()
    columns: dict[str, FloatArray] = {}
    weights: dict[str, dict[str, float]] = {}
    for _family, levels in sorted(families.items()):
        levels.sort()
        one_each = all(sum(t in r.tags for t in levels) == 1 for r in rows)
        if not one_each or len(levels) < 2:
            continue
        partitioned.update(levels)
        reference = levels[-1]
        for level in levels[:-1]:
            columns[level] = np.array(
                [1.0 if level in r.tags else -1.0 if reference in r.tags else 0.0 for r in rows]
            )
            weights[level] = {level: 1.0}
        weights[reference] = {level: -1.0 for level in levels[:-1]}
    for tag in sorted(counts):
        if tag in partitioned or not min_images <= counts[tag] < n:
            continue
        columns[tag] = np.array([1.0 if tag in r.tags else 0.0 for r in rows])
        weights[tag] = {tag: 1.0}
    return columns, weights


def _item_means(column: FloatArray, items: IntArray, n_items: int) -> FloatArray:
    sums = np.bincount(items, weights=column, minlength=n_items)
    sizes = np.bincount(items, minlength=n_items)
    means: FloatArray = (sums / np.maximum(sizes, 1))[items]
    return means


def build_design(
    group: str,
    counts: Sequence[GroupCount],
    attributes: Mapping[str, ImageAttributes],
    *,
    within_items: bool = True,
    min_tag_images: int = 5,
) -> Design | None:
    """The design of ``group``'s regression; ``None`` when no image has attributes."""
    kept = [c for c in counts if c.impressions > 0 and c.image_id in attributes]
    unmeasured = sum(1 for c in counts if c.impressions > 0 and c.image_id not in attributes)
    if not kept:
        return None
    rows = [attributes[c.image_id] for c in kept]
    codes = {item: i for i, item in enumerate(sorted({c.item_id for c in kept}))}
    items: IntArray = np.array([codes[c.item_id] for c in kept], dtype=np.int64)
    numeric = _numeric(rows)
    tags, tag_weights = _tag_columns(rows, min_tag_images)
    raw = {**numeric, **tags}
    names: list[str] = []
    blocks: list[FloatArray] = [np.ones(len(kept))]
    nuisance: list[FloatArray] = []
    for name, column in raw.items():
        if within_items:
            means = _item_means(column, items, len(codes))
            column = column - means
            if means.std() > 1e-12:
                nuisance.append(means)
        if column.std() > 1e-12:
            names.append(name)
            blocks.append(column)
    exog: FloatArray = np.column_stack(blocks + nuisance)
    index = {name: 1 + i for i, name in enumerate(names)}
    contrasts: list[Contrast] = []
    for name in numeric:
        if name in index:
            vector = np.zeros(exog.shape[1])
            vector[index[name]] = 1.0
            sd = float(np.std([float(r.numeric[name]) for r in rows]))
            contrasts.append(Contrast(name, "numeric", sd, len(rows), vector))
    for tag, parts in tag_weights.items():
        if all(p in index for p in parts):
            vector = np.zeros(exog.shape[1])
            for part, w in parts.items():
                vector[index[part]] = w
            with_tag = sum(tag in r.tags for r in rows)
            contrasts.append(Contrast(tag, "tag", None, with_tag, vector))
    imps = np.array([c.impressions for c in kept], dtype=np.float64)
    clicks = np.minimum(np.array([c.clicks for c in kept], dtype=np.float64), imps)
    return Design(
        group=group,
        exog=exog,
        endog=np.column_stack([clicks, imps - clicks]),
        items=items,
        contrasts=contrasts,
        impressions=int(imps.sum()),
        clicks=int(clicks.sum()),
        images=len(kept),
        n_items=len(codes),
        unmeasured=unmeasured,
    )
