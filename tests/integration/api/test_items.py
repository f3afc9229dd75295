"""GET /items/{item_id} on the real Redis: counts from the real counters, a real model.

A world where mobile users click banners and desktop users avoid them. The
focus item ``item-1`` has its banner on ``v0``: every audience together
prefers ``v0``, desktop users ``v1``. Its page must say so, with the counts,
the model's predictions, the verdicts per segment group, a suggestion from
the A/B test and one from the drivers, and the tags the describer cached.
"""

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
from api.attribute_source import NO_ENCODER as NO_ATTRIBUTES
from api.item_view import NO_ENCODER, CachedDescriptions
from bertctr.harness.stack import EmbeddedStack
from encoder_server.base import IMAGE_ENCODER
from encoder_server.description import Description, Tag
from online_ctr.insights import ImageAttributes, StaticAttributes
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.store import MemoryModelStore
from schemas import Impression
from schemas.events import LabelledImpression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.counters.redis_counters import RedisCounters
from streams.join.book import LiveCount

pytestmark = pytest.mark.integration

ITEMS, PER_CELL, FOCUS_PER_CELL = 30, 60, 400
FOCUS = "item-1"
MOBILE = {"device": "mobile", "geo": "DE", "taste": "t1"}
DESKTOP = {"device": "desktop", "geo": "DE", "taste": "t2"}
TAG = "7-test"


def _image(item: int, variant: int) -> str:
    return f"img-{item}-v{variant}"


def _banner(item: int, variant: int) -> bool:
    return (item + variant) % 2 == 1  # item-1: v0 has the banner


def _attributes() -> dict[str, ImageAttributes]:
    rng = np.random.default_rng(3)
    return {
        _image(i, v): ImageAttributes(
            _image(i, v),
            {"brightness": float(rng.uniform())},
            frozenset({"banner"} if _banner(i, v) else set()),
        )
        for i in range(ITEMS)
        for v in range(2)
    }


def _events() -> tuple[list[LiveCount], list[LabelledImpression]]:
    """Mobile clicks banners (40% vs 10%), desktop avoids them (5% vs 20%)."""
    live: list[LiveCount] = []
    settled: list[LabelledImpression] = []
    n = 0
    for i in range(ITEMS):
        per = FOCUS_PER_CELL if f"item-{i}" == FOCUS else PER_CELL
        for v in range(2):
            banner = _banner(i, v)
            for segment in (MOBILE, DESKTOP):
                mobile = segment is MOBILE
                ctr = (0.4 if banner else 0.1) if mobile else (0.05 if banner else 0.2)
                for j in range(per):
                    imp = Impression(
                        event_id=f"e{n}",
                        impression_id=f"i{n}",
                        ts=1_800_000_000.0 + n,
                        item_id=f"item-{i}",
                        image_id=_image(i, v),
                        variant=f"v{v}",
                        title="mug",
                        position=0,
                        segment=segment,
                    )
                    clicked = j < ctr * per
                    live.append(LiveCount(imp, "impression"))
                    if clicked:
                        live.append(LiveCount(imp, "click"))
                    settled.append(
                        LabelledImpression(
                            **imp.model_dump(),
                            label_id=f"i{n}:{'pos' if clicked else 'neg'}",
                            clicked=clicked,
                            labelled_at=imp.ts + 60,
                        )
                    )
                    n += 1
    return live, settled


async def _fill(url: str, keys: KeySpace) -> None:
    live, settled = _events()
    client = aioredis.Redis.from_url(url)
    try:
        counters = RedisCounters(client, keys)
        await counters.apply_live(live)
        await counters.apply(settled)
    finally:
        await client.aclose()


def _store(settled: list[LabelledImpression]) -> MemoryModelStore:
    learner = Learner(make_model("default"))
    for event in settled[::7]:
        learner.predict_then_learn(event)
    store = MemoryModelStore()
    store.save(learner, {}, {"model": "default"})
    return store


@pytest.fixture
def prefix(stack: EmbeddedStack) -> Iterator[str]:
    p = f"test:items:{uuid.uuid4().hex[:8]}:"
    yield p
    client = redis.Redis.from_url(stack.redis_url)
    try:
        found = list(client.scan_iter(match=f"{p}*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


def test_an_items_page_shows_counts_predictions_verdicts_and_suggestions(
    stack: EmbeddedStack, prefix: str, tmp_path: Path
) -> None:
    asyncio.run(_fill(stack.redis_url, KeySpace(prefix)))
    settings = Settings(
        redis_url=stack.redis_url,
        redis_prefix=prefix,
        checkpoint_dir=str(tmp_path),
        image_dir=str(tmp_path),
    )
    with TestClient(create_app(settings, _store(_events()[1]))) as http:
        assert http.get("/items/nope").status_code == 404
        assert http.get(f"/items/{FOCUS}", params={"control": "zz"}).status_code == 404

        # no encoder, no attribute source: tags and drivers null, and why
        bare = http.get(f"/items/{FOCUS}").json()
        assert bare["descriptions_unavailable"] == NO_ENCODER
        assert all(v["tags"] is None for v in bare["variants"])
        assert bare["drivers_unavailable"] == NO_ATTRIBUTES

        app = http.app
        state = app.state.bertctr  # type: ignore[attr-defined]

        async def tag() -> tuple[list[str], str | None]:
            return [TAG], None

        described = Description((Tag("coffee mug", 0.81),), {"brightness": 0.7, "colour": "red"})
        key = KeySpace(prefix).description(IMAGE_ENCODER, TAG, _image(1, 0))
        with redis.Redis.from_url(stack.redis_url) as client:  # as the describer writes it
            client.set(key, described.to_json())
        app.state.description_source = CachedDescriptions(state.redis, prefix, tag)  # type: ignore[attr-defined]
        app.state.attribute_source = StaticAttributes(_attributes())  # type: ignore[attr-defined]

        doc = http.get(f"/items/{FOCUS}").json()
        assert doc["item_id"] == FOCUS and doc["control"] == "v0" and doc["view"] == "live"
        v0, v1 = doc["variants"]
        assert (v0["variant"], v0["image_id"], v1["image_id"]) == ("v0", "img-1-v0", "img-1-v1")
        assert v0["thumbnail"] == "/images/img-1-v0"
        assert v0["tags"] == [{"label": "coffee mug", "score": 0.81}]
        assert v0["attributes"] == {"brightness": 0.7, "colour": "red"}
        assert v0["description_missing"] is None
        assert v1["tags"] is None and "not described yet" in v1["description_missing"]
        assert doc["descriptions_unavailable"] is None

        # counts per segment: exactly what was counted, and the model's prediction beside them
        desktop_key = "device=desktop,geo=DE,taste=t2"
        rows = {r["segment"]: r for r in v1["segments"]}
        assert set(rows) == {"all", desktop_key, "device=mobile,geo=DE,taste=t1"}
        assert (
            rows["all"]["impressions"] == 2 * FOCUS_PER_CELL
            and rows["all"]["predicted_ctr"] is None
        )
        assert rows[desktop_key]["impressions"] == FOCUS_PER_CELL
        assert rows[desktop_key]["clicks"] == int(np.ceil(0.2 * FOCUS_PER_CELL))
        assert 0 < rows[desktop_key]["predicted_ctr"] < 1
        assert doc["predictions_unavailable"] is None and doc["model"]["name"] == "default"

        # verdicts per segment group: v0 for everyone, v1 for desktop users
        verdicts = {g["segment"]: g for g in doc["ab"]}
        assert doc["ab"][0]["segment"] == "all"
        assert verdicts["all"]["decision"] == "winner" and verdicts["all"]["winner"] == "v0"
        assert verdicts["device=desktop"]["winner"] == "v1"
        assert verdicts["taste=t2"]["winner"] == "v1" and verdicts["taste=t1"]["winner"] == "v0"

        texts = [s["text"] for s in doc["suggestions"]]
        ab = [s for s in doc["suggestions"] if s["source"] == "ab"]
        assert ab[0]["segment"] == "all" and ab[0]["text"].startswith("keep variant v0")
        t2 = next(s for s in ab if s["segment"] == "taste=t2")
        assert t2["variant"] == "v1" and t2["text"].startswith(
            "show variant v1 to taste group t2: +"
        )
        assert 0 < t2["lift_low"] < t2["lift"] < t2["lift_high"]
        assert not any(s["segment"] == "taste=t1" for s in ab), texts  # same as everyone's

        drivers = [s for s in doc["suggestions"] if s["source"] == "driver"]
        assert doc["drivers_unavailable"] is None and drivers, texts
        banner_up = next(
            s
            for s in drivers
            if s["segment"] == "device=mobile" and s["text"].startswith("variants with banner")
        )
        assert banner_up["variant"] == "v0" and banner_up["lift_low"] > 0
        assert not any("brightness" in t for t in texts), texts  # noise: never significant

        # settled counts give the same verdicts; drivers can be left out
        settled = http.get(f"/items/{FOCUS}", params={"view": "settled", "drivers": False}).json()
        assert settled["view"] == "settled" and settled["ab"] == doc["ab"]
        assert settled["drivers_unavailable"].startswith("not asked")
        assert all(s["source"] == "ab" for s in settled["suggestions"])
