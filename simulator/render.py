"""Rendering catalogue entries as real PNG images with Pillow.

Each category has its own silhouette; colour, brightness, background clutter,
object scale and a text overlay come from the entry's attributes (and, in
worlds with the subtle ones, a small corner banner, a striped texture on the
product and a background tinted in harmony or in contrast with it), so variants
of one item differ in exactly the ways the audience cares about and an image
encoder has real pixels to learn them from. Drawing is plain Pillow
primitives at 224x224 (the encoder's input size), a few milliseconds per
image, and seeded, so a catalogue renders to the same bytes every time.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFont

from simulator.catalogue import COLOURS, CatalogueEntry

__all__ = ["OVERLAY_TEXTS", "RGB", "SILHOUETTES", "render", "render_png", "write_catalogue"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]

OVERLAY_TEXTS = ("SALE -30%", "NEW", "BESTSELLER", "FREE SHIPPING", "ONLY TODAY")
BANNER_TEXTS = ("NEW", "-10%", "TOP", "ECO")


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _shoe(draw: ImageDraw.ImageDraw, box: Box, fill: RGB) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.polygon(
        [
            (x0, y1 - h * 0.12),
            (x0 + w * 0.05, y0 + h * 0.3),
            (x0 + w * 0.35, y0 + h * 0.3),
            (x0 + w * 0.45, y0 + h * 0.5),
            (x1 - w * 0.05, y0 + h * 0.68),
            (x1, y1 - h * 0.12),
        ],
        fill=fill,
    )
    draw.rectangle([x0, y1 - h * 0.12, x1, y1], fill=(40, 40, 40))  # sole


def _bag(draw: ImageDraw.ImageDraw, box: Box, fill: RGB) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.arc(
        [x0 + w * 0.25, y0, x1 - w * 0.25, y0 + h * 0.6],
        180,
        360,
        fill=fill,
        width=max(2, int(w * 0.07)),
    )
    draw.polygon(
        [(x0 + w * 0.08, y0 + h * 0.3), (x1 - w * 0.08, y0 + h * 0.3), (x1, y1), (x0, y1)],
        fill=fill,
    )


def _lamp(draw: ImageDraw.ImageDraw, box: Box, fill: RGB) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.polygon(
        [
            (x0 + w * 0.15, y0 + h * 0.45),
            (x0 + w * 0.33, y0),
            (x1 - w * 0.33, y0),
            (x1 - w * 0.15, y0 + h * 0.45),
        ],
        fill=fill,
    )
    draw.rectangle([x0 + w * 0.46, y0 + h * 0.45, x1 - w * 0.46, y1 - h * 0.08], fill=fill)
    draw.ellipse([x0 + w * 0.22, y1 - h * 0.14, x1 - w * 0.22, y1], fill=fill)


def _mug(draw: ImageDraw.ImageDraw, box: Box, fill: RGB) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.ellipse(
        [x1 - w * 0.42, y0 + h * 0.3, x1, y0 + h * 0.75],
        outline=fill,
        width=max(3, int(w * 0.08)),
    )
    draw.rounded_rectangle(
        [x0 + w * 0.05, y0 + h * 0.15, x1 - w * 0.25, y1], radius=w * 0.08, fill=fill
    )
    draw.ellipse([x0 + w * 0.05, y0 + h * 0.1, x1 - w * 0.25, y0 + h * 0.22], fill=fill)


def _chair(draw: ImageDraw.ImageDraw, box: Box, fill: RGB) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    leg = w * 0.1
    draw.rectangle([x0 + w * 0.1, y0, x0 + w * 0.1 + leg, y1], fill=fill)  # back and rear leg
    draw.rectangle([x0 + w * 0.1, y0 + h * 0.5, x1 - w * 0.05, y0 + h * 0.6], fill=fill)  # seat
    draw.rectangle([x1 - w * 0.05 - leg, y0 + h * 0.5, x1 - w * 0.05, y1], fill=fill)
    draw.rectangle([x0 + w * 0.1, y0 + h * 0.08, x0 + w * 0.35, y0 + h * 0.14], fill=fill)


SILHOUETTES = {"shoe": _shoe, "bag": _bag, "lamp": _lamp, "mug": _mug, "chair": _chair}


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, amount: float) -> None:
    """Random background shapes: the busier the image, the harder the product reads."""
    for _ in range(round(amount * 40)):
        x, y = rng.uniform(0, size, 2)
        r = float(rng.uniform(3, size * 0.1))
        shade = (int(rng.integers(40, 230)), int(rng.integers(40, 230)), int(rng.integers(40, 230)))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
        elif shape == 1:
            draw.rectangle([x - r, y - r * 0.6, x + r, y + r * 0.6], fill=shade)
        else:
            x2, y2 = rng.uniform(0, size, 2)
            draw.line([x, y, float(x2), float(y2)], fill=shade, width=int(rng.integers(1, 5)))


def _harmony_tint(colour: RGB, harmony: float) -> RGB:
    """A light background: the product's own hue at 1, its complement at 0."""
    complement = tuple(255 - c for c in colour)
    mixed = [harmony * c + (1.0 - harmony) * k for c, k in zip(colour, complement, strict=True)]
    r, g, b = (round(215 + 0.16 * (m - 128)) for m in mixed)
    return (r, g, b)


def _stripes(img: Image.Image, draw_shape: Box, entry: CatalogueEntry, size: int) -> None:
    """Diagonal stripes in a darker shade, on the product's silhouette only."""
    outline = Image.new("RGB", (size, size), (0, 0, 0))
    SILHOUETTES[entry.category](ImageDraw.Draw(outline), draw_shape, (255, 255, 255))
    mask = outline.convert("L").point(lambda v: 255 if v > 200 else 0)
    lines = Image.new("L", (size, size), 0)
    ink = ImageDraw.Draw(lines)
    step = max(4, size // 28)
    for x in range(-size, size, step):
        ink.line([x, size, x + size, 0], fill=255, width=max(1, step // 3))
    shade = tuple(int(c * 0.55) for c in COLOURS[entry.colour])
    img.paste((shade[0], shade[1], shade[2]), mask=ImageChops.multiply(mask, lines))


def _banner(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int) -> None:
    """A small corner badge: a detail a thumbnail viewer notices, a global feature may not."""
    text = BANNER_TEXTS[int(rng.integers(len(BANNER_TEXTS)))]
    w, h = size * 0.2, size * 0.08
    draw.rectangle([size - w - 4, 4, size - 4, 4 + h], fill=(200, 20, 30))
    draw.text((size - w, 5), text, fill=(255, 255, 255), font=_font(max(6, size // 20)))


def render(entry: CatalogueEntry, size: int, seed: int) -> Image.Image:
    """Draw one entry; ``seed`` fixes clutter and layout so renders are reproducible."""
    rng = np.random.default_rng(seed)
    a = entry.attributes
    tint = tuple(int(c) for c in rng.integers(200, 246, 3))
    if "harmony" in a:
        tint = _harmony_tint(COLOURS[entry.colour], float(a["harmony"]))
    img = Image.new("RGB", (size, size), (tint[0], tint[1], tint[2]))
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng, size, float(a["clutter"]))
    half = size * float(a["scale"]) * 0.45
    cx = size / 2 + float(rng.uniform(-0.05, 0.05)) * size
    cy = size / 2 + float(rng.uniform(-0.05, 0.05)) * size
    box = (cx - half, cy - half, cx + half, cy + half)
    draw.ellipse([box[0], box[3] - half * 0.1, box[2], box[3] + half * 0.1], fill=(90, 90, 90))
    SILHOUETTES[entry.category](draw, box, COLOURS[entry.colour])
    if float(a.get("texture", 0.0)) > 0.5:
        _stripes(img, box, entry, size)
    if float(a.get("banner", 0.0)) > 0.5:
        _banner(draw, rng, size)
    if float(a["text_overlay"]) > 0.5:
        text = OVERLAY_TEXTS[int(rng.integers(len(OVERLAY_TEXTS)))]
        draw.rectangle([0, size * 0.8, size, size], fill=(15, 15, 15))
        draw.text((size * 0.05, size * 0.84), text, fill=(255, 230, 0), font=_font(size // 11))
    # brightness last: it darkens or lightens the whole shot, as exposure does
    return ImageEnhance.Brightness(img).enhance(0.45 + 0.9 * float(a["brightness"]))


def render_png(entry: CatalogueEntry, size: int, seed: int) -> bytes:
    """The entry as PNG bytes (deterministic for ``seed``)."""
    buf = io.BytesIO()
    render(entry, size, seed).save(buf, format="PNG")
    return buf.getvalue()


def write_catalogue(
    entries: Sequence[CatalogueEntry], directory: Path, size: int, seed: int
) -> None:
    """Write ``<image_id>.png`` for every entry into ``directory``."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        png = render_png(entry, size, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
        (directory / f"{entry.image_id}.png").write_bytes(png)
    log.info(
        "rendered %d images (%dx%d) into %s in %.2fs",
        len(entries),
        size,
        size,
        directory,
        time.perf_counter() - started,
    )
