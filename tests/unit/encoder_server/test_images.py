"""decode_image: good formats pass, each kind of bad input fails with its reason."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from encoder_server.images import BadImage, decode_image


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` RGB and whose data is empty."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    img = decode_image(_encoded(Image.new("RGB", (64, 48), (200, 10, 10)), fmt))
    assert img.mode == "RGB"
    assert img.size == (64, 48)


def test_transparency_is_composited_on_white() -> None:
    img = decode_image(_encoded(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_non_rgb_modes_are_converted() -> None:
    assert decode_image(_encoded(Image.new("L", (16, 16), 7), "PNG")).mode == "RGB"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"hello, not a picture", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"x" * 64, "not an image"),
        (_encoded(Image.new("RGB", (1, 1)), "PNG"), "image too small: 1x1"),
        (png_header(20000, 20000), "image too large: 20000x20000 pixels"),
        (_encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")[:600], "truncated image"),
        (_encoded(Image.new("RGB", (32, 32)), "BMP"), "not an image"),
    ],
)
def test_bad_inputs_fail_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage, match=reason):
        decode_image(data)


def test_byte_size_is_checked_before_parsing() -> None:
    with pytest.raises(BadImage, match=r"image too large: 52428800 bytes > 20971520"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * 1024 * 1024 - 8))


def test_limits_are_parameters() -> None:
    data = _encoded(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(BadImage, match="image too large: 100x100 pixels"):
        decode_image(data, max_pixels=9_999)
    with pytest.raises(BadImage, match="image too small"):
        decode_image(data, min_side=101)


def test_bad_image_is_a_value_error() -> None:
    assert issubclass(BadImage, ValueError)
