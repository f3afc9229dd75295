"""The catalogue drawn on real photographs (``--photos``), not the simulator's renderer."""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator import Simulator
from simulator.catalogue import COLOURS

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

__all__ = ["BANNER", "PHOTOS", "photo_catalogue"]

#: scikit-learn ships two real photographs in its wheel (nothing is downloaded)
PHOTOS = ("china.jpg", "flower.jpg")
BANNER = "SALE -30%"


def photo_catalogue(sim: Simulator, seed: int) -> dict[str, bytes]:
    """The catalogue drawn on real photographs instead of the simulator's renderer.

    Each item is a seeded square crop of one of scikit-learn's two sample
    photographs; each variant edits it the way an outside tester's variants
    did (zoomed crops, exposure, colour casts, blur, text banners), driven by
    the entry's hidden attributes so the simulator's clicks still react to
    what the picture shows: ``scale`` -> a tighter crop, ``brightness`` ->
    exposure, ``colour`` -> a 30% cast of that colour, ``clutter`` -> sharp
    (busy) against blurred (clean), ``text_overlay`` -> a dark banner with
    white text. No head, PCA or fine-tuned, has seen these pictures or the
    simulator's drawings of them: what a head learns here it learns from
    photographs and clicks.
    """
    from PIL import Image, ImageFont
    from sklearn.datasets import load_sample_image

    photos = [Image.fromarray(load_sample_image(name)).convert("RGB") for name in PHOTOS]
    size = sim.config.image_size
    band = size // 6
    try:
        font: Any = ImageFont.load_default(size=band // 2)
    except TypeError:  # a Pillow without FreeType sizes
        font = ImageFont.load_default()
    out: dict[str, bytes] = {}
    for entry in sim.catalogue:
        rng = np.random.default_rng([seed, zlib.crc32(entry.item_id.encode())])
        photo = photos[int(rng.integers(len(photos)))]
        img = _crop(photo, rng, float(entry.attributes["scale"]), size)
        img = _edit(img, entry.attributes, band, font)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out[entry.image_id] = buf.getvalue()
    return out


def _crop(photo: Picture, rng: np.random.Generator, scale: float, size: int) -> Picture:
    """A seeded square crop of ``photo``, tighter for a larger ``scale``, ``size`` pixels wide."""
    from PIL import Image

    w, h = photo.size
    side = min(w, h) * float(rng.uniform(0.45, 0.8))
    cx = float(rng.uniform(side / 2, w - side / 2))
    cy = float(rng.uniform(side / 2, h - side / 2))
    half = side * (1.0 - 0.55 * scale) / 2
    img = photo.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return img.resize((size, size), Image.Resampling.BICUBIC)


def _edit(img: Picture, a: Mapping[str, Any], band: int, font: Any) -> Picture:
    """Exposure, colour cast, blur and banner of the hidden attributes ``a``."""
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

    size = img.size[0]
    img = ImageEnhance.Brightness(img).enhance(0.35 + 0.9 * float(a["brightness"]))
    img = Image.blend(img, Image.new("RGB", img.size, COLOURS[str(a["colour"])]), 0.3)
    radius = 2.5 * (1.0 - float(a["clutter"]))
    if radius > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    if float(a["text_overlay"]) > 0.5:
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, size - band, size, size), fill=(20, 20, 20))
        draw.text((size // 10, size - band + band // 4), BANNER, fill=(255, 255, 255), font=font)
    return img
