"""GET /explain on the real Redis: counts from the real counters, attributes plugged in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from api.app import create_app
from api.attribute_source import NO_ENCODER
from bertctr.harness.stack import EmbeddedStack
from online_ctr.insights import ImageAttributes, StaticAttributes
from online_ctr.store import MemoryModelStore
from schemas import Impression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.counters.redis_counters import RedisCounters
from streams.join.book import LiveCount

pytestmark = pytest.mark.integration

ITEMS, VARIANTS, PER_CELL = 30, 3, 60
SEGMENTS = ({"device": "mobile", "geo": "DE"}, {"device": "desktop", "geo": "DE"})


def _image(item: int, variant: int) -> str:
    return f"img-{item}-v{variant}"


def _attributes() -> dict[str, ImageAttributes]:
    """Every other variant has a banner; brightness is noise."""
    rng = np.random.default_rng(1)
    out = {}
    for i in range(ITEMS):
        for v in range(VARIANTS):
            tags = frozenset({"banner"} if (i + v) % 2 else set())
            numeric = {"brightness": float(rng.uniform())}
            out[_image(i, v)] = ImageAttributes(_image(i, v), numeric, tags)
    return out


async def _fill(url: str, keys: KeySpace, attributes: dict[str, ImageAttributes]) -> None:
    """Mobile users click banners (40% vs 10%), desktop users avoid them (5% vs 20%)."""
    counts = []
    n = 0
    for i in range(ITEMS):
        for v in range(VARIANTS):
            banner = "banner" in attributes[_image(i, v)].tags
            for segment in SEGMENTS:
                mobile = segment["device"] == "mobile"
                ctr = (0.4 if banner else 0.1) if mobile else (0.05 if banner else 0.2)
                for j in range(PER_CELL):
                    imp = Impression(
                        event_id=f"e{n}",
                        impression_id=f"i{n}",
                        ts=1_800_000_000.0 + n,
                        item_id=f"item-{i}",
                        image_id=_image(i, v),
                        variant=f"v{v}",
                        position=0,
                        segment=segment,
                    )
                    counts.append(LiveCount(imp, "impression"))
                    if j < ctr * PER_CELL:
                        counts.append(LiveCount(imp, "click"))
                    n += 1
    client = aioredis.Redis.from_url(url)
    try:
        await RedisCounters(client, keys).apply_live(counts)
    finally:
        await client.aclose()


@pytest.fixture
def prefix(stack: EmbeddedStack) -> Iterator[str]:
    p = f"test:explain:{uuid.uuid4().hex[:8]}:"
    yield p
    client = redis.Redis.from_url(stack.redis_url)
    try:
        found = list(client.scan_iter(match=f"{p}*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


def _app(stack: EmbeddedStack, prefix: str, tmp_path: Path) -> TestClient:
    settings = Settings(
        redis_url=stack.redis_url, redis_prefix=prefix, checkpoint_dir=str(tmp_path)
    )
    return TestClient(create_app(settings, MemoryModelStore()))


def test_without_attributes_explain_says_why(
    stack: EmbeddedStack, prefix: str, tmp_path: Path
) -> None:
    with _app(stack, prefix, tmp_path) as http:
        response = http.get("/explain")
        # the describer's cache is wired, but without an encoder its cache tag is unknown
        body = response.json()
        assert response.status_code == 200 and body["available"] is False
        assert body["reason"] == NO_ENCODER and body["groups"] == []
        mobile = http.get("/explain/device=mobile")
        assert mobile.status_code == 200 and mobile.json()["reason"] == NO_ENCODER
        # a malformed segment is refused by the path's pattern; a field named twice matches nothing
        assert http.get("/explain/nonsense").status_code == 422
        assert http.get("/explain/taste=t1,taste=t2").status_code == 404


def test_explain_finds_what_each_audience_clicks(
    stack: EmbeddedStack, prefix: str, tmp_path: Path
) -> None:
    attributes = _attributes()
    asyncio.run(_fill(stack.redis_url, KeySpace(prefix), attributes))
    with _app(stack, prefix, tmp_path) as http:
        # counts, but none of their images measured yet
        http.app.state.attribute_source = StaticAttributes({})  # type: ignore[attr-defined]
        response = http.get("/explain")
        body = response.json()
        assert response.status_code == 200 and body["available"] is False
        assert "no attributes known" in body["reason"] and body["items_read"] > 0

        http.app.state.attribute_source = StaticAttributes(attributes)  # type: ignore[attr-defined]
        mobile = http.get("/explain/device=mobile").json()
        (group,) = mobile["groups"]
        assert group["segment"] == "device=mobile" and group["images"] == ITEMS * VARIANTS
        assert group["impressions"] == ITEMS * VARIANTS * PER_CELL
        top = group["up"][0]
        assert (
            top["attribute"] == "banner"
            and top["significant"]
            and top["unit"] == "present vs absent"
        )
        assert top["lift_low"] > 1.0  # 40% vs 10%: about +300%
        desktop = http.get("/explain/device=desktop,geo=DE").json()["groups"][0]
        assert desktop["down"][0]["attribute"] == "banner" and desktop["down"][0]["significant"]

        everything = http.get("/explain", params={"n": 1}).json()
        names = [g["segment"] for g in everything["groups"]]
        assert names == ["all", "device=desktop", "device=mobile", "geo=DE"]
        by_name = {g["segment"]: g for g in everything["groups"]}
        assert by_name["device=mobile"]["up"][0]["q_value"] == pytest.approx(top["q_value"])
        assert all(len(g["up"]) <= 1 and len(g["down"]) <= 1 for g in everything["groups"])
        brightness = [
            e
            for g in everything["groups"]
            for e in g["up"] + g["down"]
            if e["attribute"] == "brightness"
        ]
        assert not any(e["significant"] for e in brightness)
        strict = http.get("/explain/device=mobile", params={"significant_only": True}).json()
        assert all(
            e["significant"] for e in strict["groups"][0]["up"] + strict["groups"][0]["down"]
        )

        assert http.get("/explain/device=tablet").status_code == 404
        assert http.get("/explain/nonsense").status_code == 422
        assert http.get("/explain", params={"q": 1.5}).status_code == 422
