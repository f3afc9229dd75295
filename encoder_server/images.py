"""Decoding untrusted image bytes into RGB pictures, refusing bad ones early.

Images come from an image store we do not control, so every check that can
run before the expensive (and memory-hungry) decode does:

1. the byte size, before anything is parsed (a 50 MB upload never reaches
   Pillow);
2. the format, by magic bytes: only PNG, JPEG and WebP are accepted. Pillow
   knows dozens of formats, some with fragile decoders (EPS even shells out to
   Ghostscript); a product image is never one of them;
3. the dimensions, read from the header by the format's own parser. We call
   that parser directly instead of :func:`PIL.Image.open` so that the pixel
   limit is ours (``max_pixels``), reported with the real size ("image too
   large: 20000x20000 pixels"), and never depends on the process-global
   ``Image.MAX_IMAGE_PIXELS`` that other code may have changed. A 20000x20000
   single-colour PNG is only a few hundred kilobytes but would decode to
   1.2 GB of RGB;
4. only then the full decode, with ``load()`` forcing it here, so a truncated
   file fails as "truncated image" instead of later inside the model.

Every refusal is a :class:`BadImage` (a ``ValueError``) with a short reason
that ends up in the per-item ``error`` output of the encoders.
"""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

__all__ = ["BadImage", "decode_image"]

log = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024
MIN_SIDE = 8
MAX_PIXELS = 40_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class BadImage(ValueError):
    """The bytes are not an image this service accepts; the message says why."""


def _parser(data: bytes) -> type[ImageFile.ImageFile] | None:
    """The Pillow image class for the format named by ``data``'s magic bytes."""
    if data.startswith(_PNG_MAGIC):
        return PngImagePlugin.PngImageFile
    if data.startswith(_JPEG_MAGIC):
        return JpegImagePlugin.JpegImageFile
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WebPImagePlugin.WebPImageFile
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (how shops show cut-outs)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode PNG, JPEG or WebP bytes into a fully loaded RGB image.

    Parameters
    ----------
    data:
        The encoded image.
    max_bytes:
        Largest accepted input, checked before any parsing.
    min_side:
        Smallest accepted width and height, in pixels.
    max_pixels:
        Largest accepted ``width * height``, checked from the header before
        the pixels are decoded.

    Returns
    -------
    PIL.Image.Image
        An ``RGB`` image whose pixels are already decoded.

    Raises
    ------
    BadImage
        With a short reason: ``empty input``, ``image too large: N bytes >
        max``, ``not an image``, ``image too small: WxH``, ``image too large:
        WxH pixels`` or ``truncated image``.
    """
    if not data:
        raise BadImage("empty input")
    if len(data) > max_bytes:
        raise BadImage(f"image too large: {len(data)} bytes > {max_bytes}")
    parser = _parser(data)
    if parser is None:
        raise BadImage("not an image")
    try:
        img = parser(io.BytesIO(data))
    except Exception as exc:  # Pillow's parsers raise a zoo of types on hostile input
        log.debug("header parse failed: %r", exc)
        raise BadImage("not an image") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise BadImage(f"image too large: {width}x{height} pixels")
    if min(width, height) < min_side:
        raise BadImage(f"image too small: {width}x{height}")
    try:
        img.load()
        return _to_rgb(img)
    except Exception as exc:  # truncated data and corrupt streams fail here
        log.debug("decode failed: %r", exc)
        raise BadImage("truncated image") from exc
