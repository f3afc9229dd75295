"""The live page's series readers against the real Redis: exact per-minute counts, bounds."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.series import (
    MAX_MINUTES,
    PRIOR_STRENGTH,
    read_ctr_series,
    read_model_series,
    read_segment_images,
)
from bertctr.harness.stack import EmbeddedStack
from schemas import Impression
from schemas.keys import KeySpace, minute_of
from streams.counters.redis_counters import RedisCounters
from streams.join.book import LiveCount

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # a minute boundary
SEGMENTS = {  # segment -> impressions per minute
    "device=mobile,geo=DE": 5,
    "device=desktop,geo=FR": 3,
    "device=tablet,geo=US": 1,
}


@pytest.fixture
async def client(stack: EmbeddedStack) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(stack.redis_url)
    yield c
    await c.aclose()


@pytest.fixture
async def keys(client: aioredis.Redis) -> AsyncIterator[KeySpace]:
    k = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    yield k
    found = [key async for key in client.scan_iter(match=f"{k.prefix}*")]
    if found:
        await client.delete(*found)


def impression(n: int, ts: float, segment: str, item: str, variant: str) -> Impression:
    fields = dict(part.split("=") for part in segment.split(","))
    return Impression(
        event_id=f"e{n}",
        impression_id=f"i{n}",
        ts=ts,
        item_id=item,
        image_id=f"img-{item}-{variant}",
        variant=variant,
        position=0,
        segment=fields,
    )


async def fill(client: aioredis.Redis, keys: KeySpace) -> None:
    """Three minutes of traffic: every 4th impression clicked; item a twice as busy as b."""
    counts = []
    n = 0
    for minute in range(3):
        for segment, per_minute in SEGMENTS.items():
            for j in range(per_minute):
                item, variant = ("a", f"v{j % 2}") if n % 3 else ("b", "v0")
                imp = impression(n, T0 + 60 * minute + j, segment, item, variant)
                counts.append(LiveCount(imp, "impression"))
                if n % 4 == 0:
                    counts.append(LiveCount(imp, "click"))
                n += 1
    await RedisCounters(client, keys).apply_live(counts)


async def test_nothing_counted_yet_is_empty_not_an_error(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    data = await read_ctr_series(client, keys, "segment")
    assert (data.clock, data.t, data.series, data.total) == (None, [], [], None)
    data = await read_ctr_series(client, keys, "variant")
    assert (data.item, data.items, data.series) == (None, [], [])
    model = await read_model_series(client, keys)
    assert model == {"points": [], "latest": None, "encoder": None}


async def test_ctr_per_minute_by_segment_ends_at_the_clock(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    await fill(client, keys)
    data = await read_ctr_series(client, keys, "segment", minutes=5, limit=2)
    last = minute_of(T0 + 120 + 4)  # the newest impression counted
    assert data.clock == T0 + 120 + 4
    assert data.t == [60.0 * m for m in range(last - 4, last + 1)]
    # the two busiest segments, busiest first; the third is left out
    assert [s.name for s in data.series] == ["device=mobile,geo=DE", "device=desktop,geo=FR"]
    assert data.omitted == 1
    mobile = data.series[0]
    assert mobile.impressions == [0, 0, 5, 5, 5]
    assert mobile.window_impressions == 15
    assert sum(mobile.clicks) == mobile.window_clicks
    assert mobile.ctr[0] is None and mobile.ctr[2] == mobile.clicks[2] / 5
    assert data.total is not None and data.total.name == "all segments"
    assert data.total.impressions == [0, 0, 9, 9, 9]
    assert data.total.window_clicks == 7  # impressions 0, 4, ..., 24 of 27
    assert data.items == []  # the item list is for by=variant

    clipped = await read_ctr_series(client, keys, "segment", minutes=10_000, limit=100)
    assert clipped.minutes == MAX_MINUTES == len(clipped.t) and len(clipped.series) == 3


async def test_ctr_per_minute_by_variant_defaults_to_the_busiest_item(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    await fill(client, keys)
    data = await read_ctr_series(client, keys, "variant", minutes=3)
    assert data.item == "a"
    assert [(i["item_id"], i["impressions"]) for i in data.items] == [("a", 18), ("b", 9)]
    assert sorted(s.name for s in data.series) == ["v0", "v1"]
    assert data.total is not None and data.total.name == "item a"
    assert sum(data.total.impressions) == 18
    assert sum(s.window_impressions for s in data.series) == 18

    # each variant's image (the one it was last shown with), for the page's thumbnails
    assert {s.name: s.image_id for s in data.series} == {"v0": "img-a-v0", "v1": "img-a-v1"}
    assert data.total.image_id is None
    segments = await read_ctr_series(client, keys, "segment", minutes=3)
    assert all(s.image_id is None for s in segments.series)

    other = await read_ctr_series(client, keys, "variant", item="b", minutes=3)
    assert other.item == "b" and [s.name for s in other.series] == ["v0"]
    assert other.series[0].impressions == [3, 3, 3]
    unknown = await read_ctr_series(client, keys, "variant", item="nope", minutes=3)
    assert unknown.series == [] and unknown.total is not None
    assert unknown.total.impressions == [0, 0, 0]


async def test_model_series_skips_what_it_cannot_read(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    points = [
        {"t": 10.0, "count": 5, "logloss": 0.2, "ne": 0.95, "auc": 0.61, "calibration": 1.1},
        "not json",
        {
            "t": 20.0,
            "count": 9,
            "logloss": 0.2,
            "ne": None,
            "auc": 0.62,
            "calibration": 1.0,
            "watermark": 7_200.0,
        },
        {"count": 3},
    ]
    for p in points:
        await client.rpush(keys.model_history, p if isinstance(p, str) else json.dumps(p))
    metrics = {"count": 9, "ne": float("nan"), "auc": 0.62, "model": "default", "segments": {}}
    await client.set(keys.model_metrics, json.dumps(metrics))
    await client.set(keys.encoder_status, json.dumps({"champion": "image_encoder"}))

    data = await read_model_series(client, keys)
    assert [p["t"] for p in data["points"]] == [10.0, 20.0]
    assert data["points"][1]["ne"] is None and data["points"][0]["auc"] == 0.61
    # the event time the model had reached (the CTR charts' clock); absent in older points
    assert [p["watermark"] for p in data["points"]] == [None, 7_200.0]
    assert data["latest"]["count"] == 9 and data["latest"]["ne"] is None  # NaN is not JSON
    assert "segments" not in data["latest"]
    assert data["encoder"] == {"champion": "image_encoder"}
    newest = await read_model_series(client, keys, points=1)
    assert newest["points"] == []  # the newest entry is unreadable


#: (segment, item, variant) -> (impressions, clicks)
CELLS = {
    ("device=mobile,geo=DE", "x", "v0"): (200, 20),  # 10% on a lot of traffic
    ("device=mobile,geo=DE", "x", "v1"): (200, 2),  # 1%
    ("device=mobile,geo=DE", "y", "v0"): (12, 3),  # 25%, but on 12 impressions
    ("device=mobile,geo=DE", "z", "v0"): (4, 4),  # 100% on 4: under min_impressions
    ("device=tablet,geo=US", "y", "v1"): (50, 5),
}


async def fill_cells(client: aioredis.Redis, keys: KeySpace) -> None:
    counts = []
    n = 0
    for (segment, item, variant), (shown, clicked) in CELLS.items():
        for j in range(shown):
            imp = impression(n, T0 + j, segment, item, variant)
            counts.append(LiveCount(imp, "impression"))
            if j < clicked:
                counts.append(LiveCount(imp, "click"))
            n += 1
    await RedisCounters(client, keys).apply_live(counts)


async def test_segment_images_rank_by_a_shrunk_ctr_not_by_luck(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    await fill_cells(client, keys)
    de = await read_segment_images(client, keys, "device=mobile,geo=DE", n=1)
    assert (de.segment, de.min_impressions, de.prior_strength) == (
        "device=mobile,geo=DE",
        10,
        PRIOR_STRENGTH,
    )
    assert de.items_considered == 3 and de.candidates == 3  # z/v0 has 4 impressions
    assert de.prior_ctr == 29 / 416
    # y/v0's 25% on 12 impressions ranks below x/v0's 10% on 200
    assert [(c.item_id, c.variant, c.image_id) for c in de.top] == [("x", "v0", "img-x-v0")]
    assert [(c.item_id, c.variant) for c in de.bottom] == [("x", "v1")]
    best = de.top[0]
    assert (best.impressions, best.clicks, best.ctr) == (200, 20, 0.1)
    assert best.score == (20 + PRIOR_STRENGTH * de.prior_ctr) / (200 + PRIOR_STRENGTH)

    # top and bottom never share a cell: three candidates split two and one
    three = await read_segment_images(client, keys, "device=mobile,geo=DE", n=3)
    assert [(c.item_id, c.variant) for c in three.top] == [("x", "v0"), ("y", "v0")]
    assert [(c.item_id, c.variant) for c in three.bottom] == [("x", "v1")]
    lucky = await read_segment_images(client, keys, "device=mobile,geo=DE", n=3, min_impressions=1)
    assert lucky.candidates == 4 and ("z", "v0") in [(c.item_id, c.variant) for c in lucky.top]

    everywhere = await read_segment_images(client, keys, None, n=2)
    assert everywhere.segment is None and everywhere.candidates == 4
    assert everywhere.prior_ctr == 34 / 466
    assert {(c.item_id, c.variant) for c in everywhere.top + everywhere.bottom} == {
        ("x", "v0"),
        ("x", "v1"),
        ("y", "v0"),
        ("y", "v1"),
    }
    unknown = await read_segment_images(client, keys, "device=nope", n=2)
    assert (unknown.prior_ctr, unknown.top, unknown.bottom) == (None, [], [])


async def test_segment_images_of_nothing_counted_are_empty(
    client: aioredis.Redis, keys: KeySpace
) -> None:
    data = await read_segment_images(client, keys, None)
    assert (data.items_considered, data.candidates, data.top, data.bottom) == (0, 0, [], [])
