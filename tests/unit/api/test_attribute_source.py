"""The describer's descriptions as the drivers analysis reads them (pure)."""

from __future__ import annotations

import math

from api.attribute_source import MIN_TAG_SCORE, image_attributes
from encoder_server.description import Description, Tag


def test_numbers_stay_numbers_names_become_family_levels_and_sure_tags_indicators() -> None:
    description = Description(
        (Tag("running shoe", 0.55), Tag("a=b", 0.3), Tag("clog", MIN_TAG_SCORE / 2)),
        {"brightness": 0.62, "colour": "red", "sharpness": 0.7, "clutter": math.nan},
    )
    got = image_attributes("img-1", description)
    assert got.image_id == "img-1"
    assert dict(got.numeric) == {"brightness": 0.62, "sharpness": 0.7}  # NaN left out
    # a label with "=" must not pose as a family level
    assert got.tags == frozenset({"colour=red", "tag:running shoe", "tag:a b"})


def test_the_tag_threshold_is_a_parameter() -> None:
    description = Description((Tag("clog", 0.05),), {})
    assert image_attributes("x", description, min_tag_score=0.01).tags == {"tag:clog"}
    assert image_attributes("x", description).tags == frozenset()
