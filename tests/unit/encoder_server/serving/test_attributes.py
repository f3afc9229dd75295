"""Measured attributes on known pictures and on the simulator's renders (known truth)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy.stats import spearmanr

from encoder_server.serving.attributes import RANGES, measure, measure_image
from simulator.catalogue import COLOURS, build_catalogue
from simulator.render import render


def _object(colour: tuple[int, int, int], side: int, background: int = 235) -> Image.Image:
    img = Image.new("RGB", (224, 224), (background,) * 3)
    lo, hi = 112 - side // 2, 112 + side // 2
    ImageDraw.Draw(img).rectangle([lo, lo, hi, hi], fill=colour)
    return img


@pytest.mark.parametrize("name", ["red", "blue", "green", "yellow", "orange", "purple"])
def test_a_rendered_object_is_named_by_its_colour(name: str) -> None:
    assert measure_image(_object(COLOURS[name], 100))["colour"] == name


def test_black_and_white_objects() -> None:
    assert measure_image(_object((20, 20, 20), 100))["colour"] == "black"
    assert measure_image(_object((250, 250, 250), 100, background=60))["colour"] == "white"


def test_a_blurred_copy_is_less_sharp() -> None:
    entry = build_catalogue(np.random.default_rng(0), 1, 1)[0]
    sharp = render(entry, 224, 1)
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    before, after = measure_image(sharp)["sharpness"], measure_image(blurred)["sharpness"]
    assert float(after) < float(before) / 4 and float(before) > 0.5


def test_a_larger_object_has_a_larger_scale() -> None:
    small, large = (measure_image(_object(COLOURS["red"], s))["scale"] for s in (60, 160))
    assert float(small) == pytest.approx((61 / 224) ** 2, abs=0.01)
    assert float(large) > float(small) * 4


def test_grey_has_no_colourfulness_and_flat_has_no_contrast() -> None:
    flat = measure(np.full((64, 64, 3), 128, dtype=np.uint8))
    assert flat["colourfulness"] == 0.0 and flat["contrast"] == 0.0
    assert flat["brightness"] == pytest.approx(128 / 255, abs=1e-3)
    assert flat["text"] == 0.0 and flat["scale"] == 0.0


def test_refuses_what_is_not_rgb() -> None:
    with pytest.raises(ValueError, match="uint8"):
        measure(np.zeros((8, 8), dtype=np.uint8))


@pytest.fixture(scope="module")
def renders() -> list[tuple[dict[str, float], dict[str, float | str]]]:
    """Forty catalogue renders with the subtle attributes: (truth, measured)."""
    entries = build_catalogue(np.random.default_rng(3), 20, 2, subtle=np.random.default_rng(4))
    return [(e.numeric(), measure_image(render(e, 224, i))) for i, e in enumerate(entries)]


@pytest.mark.parametrize(
    ("truth", "measured", "at_least"),
    [
        ("brightness", "brightness", 0.6),
        ("text_overlay", "text", 0.6),
        ("banner", "text", 0.2),
        ("scale", "scale", 0.4),
        ("texture", "sharpness", 0.3),
    ],
)
def test_measures_track_the_renderers_attributes(
    renders: list[tuple[dict[str, float], dict[str, float | str]]],
    truth: str,
    measured: str,
    at_least: float,
) -> None:
    rho = spearmanr([t[truth] for t, _ in renders], [float(m[measured]) for _, m in renders])
    assert rho.statistic > at_least, (truth, measured, rho)


def test_text_or_banner_is_detected_and_plain_shots_are_not(
    renders: list[tuple[dict[str, float], dict[str, float | str]]],
) -> None:
    with_text = [float(m["text"]) for t, m in renders if t["text_overlay"] or t["banner"]]
    plain = [float(m["text"]) for t, m in renders if not (t["text_overlay"] or t["banner"])]
    assert min(with_text) > max(plain)


def test_every_number_is_in_its_documented_range(
    renders: list[tuple[dict[str, float], dict[str, float | str]]],
) -> None:
    for _, m in renders:
        for name, (lo, hi) in RANGES.items():
            assert lo <= float(m[name]) <= hi, (name, m[name])
