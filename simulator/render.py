"""Rendering catalogue entries as real PNG images with Pillow.

Each category has its own silhouette; colour, brightness, background clutter,
object scale and a text overlay come from the entry's attributes, so variants
of one item look different in exactly the ways the audience cares about.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from simulator.catalogue import COLOURS, CatalogueEntry


def _silhouette(
    draw: ImageDraw.ImageDraw,
    category: str,
    box: tuple[float, float, float, float],
    fill: tuple[int, int, int],
) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if category == "shoe":
        draw.polygon(
            [
                (x0, y1),
                (x0, y0 + h * 0.4),
                (x0 + w * 0.4, y0 + h * 0.4),
                (x1, y0 + h * 0.75),
                (x1, y1),
            ],
            fill=fill,
        )
    elif category == "bag":
        draw.rectangle([x0, y0 + h * 0.3, x1, y1], fill=fill)
        draw.arc(
            [x0 + w * 0.25, y0, x1 - w * 0.25, y0 + h * 0.6],
            180,
            360,
            fill=fill,
            width=max(2, int(w * 0.06)),
        )
    elif category == "lamp":
        draw.polygon(
            [
                (x0 + w * 0.2, y0 + h * 0.45),
                (x0 + w * 0.35, y0),
                (x1 - w * 0.35, y0),
                (x1 - w * 0.2, y0 + h * 0.45),
            ],
            fill=fill,
        )
        draw.rectangle([x0 + w * 0.46, y0 + h * 0.45, x1 - w * 0.46, y1 - h * 0.1], fill=fill)
        draw.rectangle([x0 + w * 0.25, y1 - h * 0.1, x1 - w * 0.25, y1], fill=fill)
    elif category == "mug":
        draw.rectangle([x0, y0 + h * 0.15, x1 - w * 0.25, y1], fill=fill)
        draw.ellipse(
            [x1 - w * 0.4, y0 + h * 0.35, x1, y0 + h * 0.75],
            outline=fill,
            width=max(2, int(w * 0.07)),
        )
    else:  # chair
        draw.rectangle([x0, y0, x0 + w * 0.15, y1], fill=fill)
        draw.rectangle([x0, y0 + h * 0.5, x1, y0 + h * 0.62], fill=fill)
        draw.rectangle([x1 - w * 0.12, y0 + h * 0.5, x1, y1], fill=fill)


def render(entry: CatalogueEntry, size: int, seed: int) -> Image.Image:
    """Draw one entry; ``seed`` fixes the clutter so renders are reproducible."""
    rng = np.random.default_rng(seed)
    a = entry.attributes
    bright = float(a["brightness"])
    grey = int(60 + 180 * bright)
    img = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(img)
    for _ in range(int(float(a["clutter"]) * 25)):
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(2, size * 0.08)
        shade = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
    scale = float(a["scale"])
    half = size * scale * 0.45
    c = size / 2
    r0, g0, b0 = (int(ch * (0.6 + 0.4 * bright)) for ch in COLOURS[entry.colour])
    colour = (r0, g0, b0)
    _silhouette(draw, entry.category, (c - half, c - half, c + half, c + half), colour)
    if float(a["text_overlay"]) > 0.5:
        draw.rectangle([0, size * 0.82, size, size], fill=(0, 0, 0))
        draw.text((size * 0.05, size * 0.85), "SALE -30%", fill=(255, 255, 255))
    return img


def render_png(entry: CatalogueEntry, size: int, seed: int) -> bytes:
    buf = io.BytesIO()
    render(entry, size, seed).save(buf, format="PNG")
    return buf.getvalue()


def write_catalogue(entries: list[CatalogueEntry], directory: Path, size: int, seed: int) -> None:
    """Write ``<image_id>.png`` for every entry into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        (directory / f"{entry.image_id}.png").write_bytes(render_png(entry, size, seed + i))
