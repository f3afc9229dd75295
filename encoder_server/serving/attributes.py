"""Measured visual attributes of one picture: what is in the pixels, in numbers.

The embedding says an image is like others; it does not say *why* two
variants of one product differ. These measures do, each one a short formula
on the RGB pixels, documented with its range, so ``/explain`` and ``/items``
can say "darker, busier, smaller subject, has a banner".

All measures run on a picture resized to :data:`ANALYSIS_SIDE` squared (the
encoder's input size), so they do not depend on the upload's resolution and
cost about a millisecond or two. ``L`` is Rec. 601 luma,
``0.299 R + 0.587 G + 0.114 B`` on 0..255.

=================  ===========================================================  ==========
name               formula                                                      range
=================  ===========================================================  ==========
``brightness``     mean(L) / 255                                                [0, 1]
``contrast``       RMS contrast: std(L / 255)                                   [0, 0.5]
``colourfulness``  Hasler & Suesstrunk (2003): ``sqrt(sd(rg)^2 + sd(yb)^2) +     [0, ~180]
                   0.3 sqrt(mean(rg)^2 + mean(yb)^2)``, ``rg = R - G``,
                   ``yb = (R + G) / 2 - B``; about 15 "slightly", 33
                   "moderately", 59 "quite", 82 "highly", 109 "extremely"
                   colourful
``colour``         name of the palette colour (:data:`PALETTE`) most of the     a name
                   subject's pixels are nearest to (hue, saturation, value
                   rules); the whole frame when no subject stands out
``sharpness``      ``v / (v + 100)``, ``v`` the variance of the 4-neighbour     [0, 1)
                   Laplacian of L (Pech-Pacheco et al. 2000); 0.5 at ``v`` =
                   100, a crisp product shot is above 0.6
``text``           share of text-like 8x8-pixel cells in the densest window of    [0, 1]
                   3x6 cells; a cell is text-like when its luma spans more
                   than 48 levels and a 16-pixel run on its median row holds
                   at least 6 strong horizontal steps (glyph strokes; an
                   outline or a blob makes 2); a caption or a corner badge
                   gives 0.1 or more, a plain shot 0
``scale``          share of the frame the subject fills: the connected region   [0, 1]
                   of pixels differing from the background colour (median of
                   the 4-pixel border) by more than 48 (RGB distance) that
                   holds the most pixels of the central third, holes filled
``clutter``        edge density outside the subject: share of pixels, away      [0, 1]
                   from the subject (dilated by 3 px), whose Sobel gradient
                   magnitude of L exceeds 64
=================  ===========================================================  ==========

Why hand-written: each is a few numpy lines over scipy.ndimage filters;
no installed package computes these exact definitions (scikit-image, which
has some of them, is not a dependency).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

__all__ = [
    "ANALYSIS_SIDE",
    "ATTRIBUTE_NAMES",
    "PALETTE",
    "Attributes",
    "brightness",
    "clutter",
    "colour_name",
    "colourfulness",
    "contrast",
    "measure",
    "measure_image",
    "sharpness",
    "subject_mask",
    "text_score",
]

#: side of the square picture every measure runs on
ANALYSIS_SIDE = 224
#: the attributes :func:`measure` returns, in this order
ATTRIBUTE_NAMES = (
    "brightness",
    "contrast",
    "colourfulness",
    "colour",
    "sharpness",
    "text",
    "scale",
    "clutter",
)
#: the named colours ``colour`` takes (a small palette a shop's filters use)
PALETTE = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "grey",
    "white",
)

Attributes = Mapping[str, float | str]
Pixels = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_SHARPNESS_HALF = 100.0  # Laplacian variance at which sharpness is 0.5
_SUBJECT_DISTANCE = 48.0  # RGB distance from the background that marks the subject
_EDGE_THRESHOLD = 64.0  # Sobel magnitude of L (0..255) that counts as an edge
_TEXT_CELL = 8
_TEXT_SPAN = 48.0
_TEXT_STEPS = 6
_TEXT_WINDOW = (3, 6)


def luma(pixels: Pixels) -> Floats:
    """Rec. 601 luma on 0..255, float64 ``[h, w]``."""
    out: Floats = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return out


def brightness(lum: Floats) -> float:
    """Mean luma over 255, in [0, 1]."""
    return float(lum.mean() / 255.0)


def contrast(lum: Floats) -> float:
    """RMS contrast, the standard deviation of luma on 0..1, in [0, 0.5]."""
    return float((lum / 255.0).std())


def colourfulness(pixels: Pixels) -> float:
    """Hasler & Suesstrunk's (2003) colourfulness M on 0..255 RGB (0 for grey)."""
    rgb = pixels.astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = np.hypot(rg.std(), yb.std())
    centre = np.hypot(rg.mean(), yb.mean())
    return float(spread + 0.3 * centre)


def sharpness(lum: Floats) -> float:
    """Variance of the Laplacian of luma, mapped to [0, 1) as ``v / (v + 100)``."""
    v = float(ndimage.laplace(lum).var())
    return v / (v + _SHARPNESS_HALF)


def _hsv(pixels: Pixels) -> tuple[Floats, Floats, Floats]:
    """Hue in degrees [0, 360), saturation and value in [0, 1]."""
    rgb = pixels.astype(np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    top = rgb.max(axis=-1)
    span = top - rgb.min(axis=-1)
    safe = np.where(span > 0, span, 1.0)
    hue = np.select(
        [top == r, top == g],
        [((g - b) / safe) % 6.0, (b - r) / safe + 2.0],
        (r - g) / safe + 4.0,
    )
    sat = np.where(top > 0, span / np.where(top > 0, top, 1.0), 0.0)
    return (hue * 60.0) % 360.0, sat, top


def _palette_index(pixels: Pixels) -> npt.NDArray[np.intp]:
    """Each pixel's :data:`PALETTE` index, by hue bands and grey levels."""
    hue, sat, val = _hsv(pixels)
    # upper hue bound of each saturated colour; red wraps around 360
    bounds = np.array([15, 40, 70, 165, 195, 255, 295, 340])
    names = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0])  # red ... pink, red again
    index = names[np.searchsorted(bounds, hue, side="right")]
    index = np.where((index == 1) & (val < 0.6), 8, index)  # dark orange: brown
    grey = sat < 0.25
    index = np.where(grey, np.where(val > 0.85, 11, 10), index)
    index = np.where(val < 0.2, 9, index)
    return index.astype(np.intp)


def colour_name(pixels: Pixels, mask: Mask | None = None) -> str:
    """The :data:`PALETTE` name of the picture's (or ``mask``'s) dominant colour.

    The most frequent chromatic name when at least a quarter of the pixels
    are chromatic (a red shoe with a black sole is red), else the most
    frequent of black, grey and white.
    """
    chosen = pixels[mask] if mask is not None and mask.any() else pixels.reshape(-1, 3)
    counts = np.bincount(_palette_index(chosen), minlength=len(PALETTE))
    chromatic = counts[:9]
    if chromatic.sum() >= 0.25 * counts.sum():
        return PALETTE[int(chromatic.argmax())]
    return PALETTE[9 + int(counts[9:].argmax())]


def subject_mask(pixels: Pixels) -> Mask:
    """The subject: the region unlike the border's colour that holds the centre.

    Background is the per-channel median of a 4-pixel border ring; pixels
    farther than 48 from it (RGB distance) are foreground; of its connected
    regions, the one with the most pixels in the central third is the
    subject, with its holes filled. Empty when nothing stands out.
    """
    h, w, _ = pixels.shape
    rgb = pixels.astype(np.float64)
    ring = np.ones((h, w), dtype=bool)
    ring[4:-4, 4:-4] = False
    background = np.median(rgb[ring], axis=0)
    foreground = np.linalg.norm(rgb - background, axis=-1) > _SUBJECT_DISTANCE
    labels, count = ndimage.label(foreground)
    if count == 0:
        return np.zeros((h, w), dtype=bool)
    centre = labels[h // 3 : h - h // 3, w // 3 : w - w // 3]
    held = np.bincount(centre.ravel(), minlength=count + 1)
    held[0] = 0
    if held.max() == 0:
        return np.zeros((h, w), dtype=bool)
    mask: Mask = ndimage.binary_fill_holes(labels == int(held.argmax()))
    return mask


def clutter(lum: Floats, subject: Mask) -> float:
    """Share of edge pixels (Sobel magnitude of luma > 64) outside the dilated subject."""
    magnitude = np.hypot(ndimage.sobel(lum, axis=0), ndimage.sobel(lum, axis=1)) / 4.0
    outside = ~ndimage.binary_dilation(subject, iterations=3)
    if not outside.any():
        return 0.0
    return float((magnitude[outside] > _EDGE_THRESHOLD).mean())


def text_score(lum: Floats) -> float:
    """Share of text-like cells in the densest window of 3x6 cells of 8x8 pixels.

    A cell is text-like when its luma spans more than 48 levels and, on its
    median row, a 16-pixel run centred on it holds at least 6 strong
    horizontal steps (more than 12% of the 99th-percentile luma, at least
    8): the strokes of glyphs. An object's outline, a line or a blob makes
    two steps in such a run; a caption or a corner badge makes many.
    """
    cell = _TEXT_CELL
    h, w = lum.shape
    rows, cols = h // cell, w // cell
    if rows == 0 or cols == 0:
        return 0.0
    tiles = lum[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell)
    span = tiles.max(axis=(1, 3)) - tiles.min(axis=(1, 3))
    step = max(0.12 * float(np.percentile(lum, 99)), 8.0)
    edges = np.zeros_like(lum)
    edges[:, 1:] = np.abs(np.diff(lum, axis=1)) > step
    runs = ndimage.convolve1d(edges, np.ones(2 * cell), axis=1, mode="constant")
    at_centres = runs[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell)[..., cell // 2]
    texty = (span > _TEXT_SPAN) & (np.median(at_centres, axis=1) >= _TEXT_STEPS)
    window = ndimage.uniform_filter(texty.astype(np.float64), size=_TEXT_WINDOW, mode="constant")
    return float(window.max())


def measure(pixels: Pixels) -> dict[str, float | str]:
    """Every attribute of :data:`ATTRIBUTE_NAMES` for an RGB ``uint8 [h, w, 3]`` picture.

    Numbers are rounded to 4 decimals (they are read by people and stored
    as JSON).

    >>> red = np.zeros((64, 64, 3), dtype=np.uint8) + 240
    >>> red[16:48, 16:48] = (205, 40, 45)
    >>> got = measure(red)
    >>> got["colour"], got["scale"]
    ('red', 0.25)
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"want uint8 [h, w, 3] RGB, got {pixels.dtype} {pixels.shape}")
    lum = luma(pixels)
    subject = subject_mask(pixels)
    values: dict[str, float | str] = {
        "brightness": brightness(lum),
        "contrast": contrast(lum),
        "colourfulness": colourfulness(pixels),
        "colour": colour_name(pixels, subject),
        "sharpness": sharpness(lum),
        "text": text_score(lum),
        "scale": float(subject.mean()),
        "clutter": clutter(lum, subject),
    }
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def measure_image(img: Image.Image) -> dict[str, float | str]:
    """:func:`measure` of a decoded picture, resized to :data:`ANALYSIS_SIDE` squared."""
    side = ANALYSIS_SIDE
    rgb = img.convert("RGB")
    if rgb.size != (side, side):
        rgb = rgb.resize((side, side), Image.Resampling.BILINEAR)
    return measure(np.asarray(rgb, dtype=np.uint8))


#: the range of every numeric attribute, as documented above
RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "brightness": (0.0, 1.0),
        "contrast": (0.0, 0.5),
        "colourfulness": (0.0, 180.0),
        "sharpness": (0.0, 1.0),
        "text": (0.0, 1.0),
        "scale": (0.0, 1.0),
        "clutter": (0.0, 1.0),
    }
)
