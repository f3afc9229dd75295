"""The drivers heatmap from described images: real estimate, a fake describer cache."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np

from api.attribute_source import NO_ENCODER, image_attributes
from bertctr.report.attributes import described_attributes
from bertctr.report.data import DriversGrid, Unavailable
from bertctr.report.gather import drivers_grid
from encoder_server.description import Description, Tag
from online_ctr.insights import CellCount, ImageAttributes
from schemas.settings import Settings

SEGMENTS = ({"device": "mobile"}, {"device": "desktop"})


class FakeDescriber:
    """The describer's cache as the report reads it: descriptions of some images."""

    def __init__(self, descriptions: Mapping[str, Description]) -> None:
        self.descriptions = dict(descriptions)

    async def attributes(self, image_ids: Sequence[str]) -> Mapping[str, ImageAttributes]:
        known = [i for i in image_ids if i in self.descriptions]
        return {i: image_attributes(i, self.descriptions[i]) for i in known}

    @property
    def unavailable_reason(self) -> str | None:
        return None


def world(seed: int = 3) -> tuple[list[CellCount], dict[str, Description]]:
    """60 items, a red and a blue variant each; mobile clicks red more, desktop does not care.

    Sharpness and a tag are decoys: no segment's clicks depend on them.
    """
    rng = np.random.default_rng(seed)
    cells, described = [], {}
    for item in range(60):
        base = rng.normal(-3.0, 0.3)
        for colour in ("red", "blue"):
            image = f"img-{item}-{colour}"
            described[image] = Description(
                (Tag("sneaker", float(rng.uniform(0.0, 0.5))),),
                {"colour": colour, "sharpness": float(rng.uniform(0, 1))},
            )
            for segment in SEGMENTS:
                lift = 0.6 if colour == "red" and segment["device"] == "mobile" else 0.0
                p = 1.0 / (1.0 + np.exp(-(base + lift)))
                n = 1500
                cells.append(CellCount(f"item-{item}", image, segment, n, int(rng.binomial(n, p))))
    return cells, described


def _cell(grid: DriversGrid, group: str, attribute: str) -> tuple[float | None, bool]:
    i, j = grid.groups.index(group), grid.attributes.index(attribute)
    return grid.effects[i][j], grid.significant[i][j]


def test_the_heatmap_finds_what_drives_mobile_clicks_among_described_images() -> None:
    cells, described = world()
    source = FakeDescriber(described)
    images = sorted({c.image_id for c in cells})
    grid = drivers_grid(cells, asyncio.run(source.attributes(images)), len(images))
    assert isinstance(grid, DriversGrid), grid
    assert {"device=mobile", "device=desktop"} <= set(grid.groups)
    # significant attributes come first: red for mobile is the finding
    assert grid.attributes[0] in ("colour=red", "colour=blue")
    # effect coded: red vs the average colour is half the true red-blue gap of 0.6
    red, red_found = _cell(grid, "device=mobile", "colour=red")
    assert red_found and red is not None and abs(red - 0.3) < 0.05
    desktop_red, _ = _cell(grid, "device=desktop", "colour=red")
    assert desktop_red is not None and abs(desktop_red) < red / 4
    for decoy in ("sharpness", "tag:sneaker"):
        if decoy in grid.attributes:
            assert not any(_cell(grid, g, decoy)[1] for g in grid.groups), decoy
    assert grid.q is not None and grid.label == "effect on click log-odds"


def test_images_not_described_yet_say_so() -> None:
    cells, _ = world()
    grid = drivers_grid(cells, {}, 120)
    assert isinstance(grid, Unavailable)
    assert "120 counted images" in grid.reason and "described" in grid.reason


def test_without_an_encoder_the_report_says_why_there_are_no_attributes() -> None:
    async def reason() -> str | None:
        async with described_attributes(Settings.from_env({})) as source:
            return source.unavailable_reason

    assert asyncio.run(reason()) == NO_ENCODER
