from __future__ import annotations

import asyncio

import numpy as np
import pytest

from online_ctr.insights import (
    AttributeSource,
    CellCount,
    GroupCount,
    ImageAttributes,
    NoAttributes,
    StaticAttributes,
    bh_q_values,
    group_fields,
    roll_up,
    segment_groups,
)
from online_ctr.insights.design import build_design


def test_groups_parse_and_roll_up() -> None:
    assert group_fields("device=mobile,geo=DE") == {"device": "mobile", "geo": "DE"}
    assert group_fields("device=mobile,device=tablet") is None
    assert group_fields("=x") is None
    assert segment_groups({"taste": "t1", "device": "m"}) == ["all", "device=m", "taste=t1"]
    cells = [
        CellCount("i", "a", {"device": "m", "taste": "t1"}, 10, 1),
        CellCount("i", "a", {"device": "d", "taste": "t1"}, 20, 3),
        CellCount("i", "b", {"device": "m", "taste": "t2"}, 5, 0),
    ]
    rolled = {
        (g.group, g.image_id): (g.impressions, g.clicks) for g in roll_up(cells, ["nonsense"])
    }
    assert rolled[("taste=t1", "a")] == (30, 4)
    assert rolled[("device=m", "a")] == (10, 1)
    assert rolled[("all", "b")] == (5, 0)
    assert not any(group == "nonsense" for group, _ in rolled)


def test_bh_matches_scipy_and_is_monotone_in_p() -> None:
    p = [0.001, 0.2, 0.03, 0.04, 0.9]
    q = bh_q_values(p)
    assert q[0] == pytest.approx(0.005)
    assert all(qi >= pi for qi, pi in zip(q, p, strict=True))
    order = np.argsort(p)
    assert list(np.array(q)[order]) == sorted(q)
    assert bh_q_values([]) == []


def _attrs(
    image: str, colour: str, x: float, extra: frozenset[str] = frozenset()
) -> ImageAttributes:
    return ImageAttributes(image, {"x": x}, frozenset({f"colour={colour}"}) | extra)


def test_a_partitioning_tag_family_is_compared_with_its_average_level() -> None:
    colours = ["red", "blue", "green"]
    attrs = {}
    counts = []
    for i in range(30):
        for v in range(3):
            image = f"{i}-{v}"
            attrs[image] = _attrs(
                image, colours[(i + v) % 3], float(v + i % 2), frozenset({"everywhere"})
            )
            counts.append(GroupCount("all", f"item-{i}", image, 100, 5))
    counts.append(GroupCount("all", "item-x", "no-attributes", 100, 5))
    design = build_design("all", counts, attrs)
    assert design is not None and design.unmeasured == 1
    tags = {c.attribute: c.vector for c in design.contrasts if c.kind == "tag"}
    assert set(tags) == {"colour=red", "colour=blue", "colour=green"}  # "everywhere" cannot vary
    assert np.allclose(sum(tags.values()), 0.0)


def test_without_within_items_the_design_has_no_item_means() -> None:
    attrs = {f"{i}": _attrs(f"{i}", "red" if i % 2 else "blue", float(i)) for i in range(10)}
    counts = [GroupCount("all", f"item-{i // 2}", f"{i}", 100, 5) for i in range(10)]
    within = build_design("all", counts, attrs)
    pooled = build_design("all", counts, attrs, within_items=False)
    assert within is not None and pooled is not None
    # const, x, colour; within: their deviations, x's item means (every item is half red)
    assert pooled.exog.shape[1] == 3 and within.exog.shape[1] == 4
    assert build_design("all", counts, {}) is None


def test_attribute_sources() -> None:
    known = ImageAttributes("a", {"x": 1.0})
    static, none = StaticAttributes({"a": known}), NoAttributes("not wired")
    assert isinstance(static, AttributeSource) and isinstance(none, AttributeSource)
    assert asyncio.run(static.attributes(["a", "b"])) == {"a": known}
    assert static.unavailable_reason is None
    assert asyncio.run(none.attributes(["a"])) == {}
    assert none.unavailable_reason == "not wired"
