"""GET /explain from real descriptions: the learner's embedder describes through the real Triton.

The images are rendered here (a red or a blue product, at random size,
place and background light); the learner's own embedder
(:func:`wiring.embedding.embedder_factory`, describing as it embeds) sends
them through the real ``bertctr encoder serve``, which caches each image's
embedding and description in the real Redis. Counters are filled as the
counter agent fills them, with mobile users clicking red and desktop users
blue; the API, wired as shipped, must find that from the describer's
measured ``colour``, not from anything the test tells it.
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
from PIL import Image

from api.app import create_app
from bertctr.harness.encoders import EncoderServer, start_encoder_server
from bertctr.harness.stack import EmbeddedStack
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.describer import read_descriptions
from online_ctr.store import MemoryModelStore
from schemas import Impression
from schemas.keys import KeySpace
from schemas.settings import Settings
from schemas.tensors import IMAGE_DESCRIBER
from simulator.catalogue import COLOURS
from streams.counters.redis_counters import RedisCounters
from streams.join.book import LiveCount
from wiring.embedding import embedder_factory

pytestmark = pytest.mark.integration

ITEMS, VARIANTS, PER_CELL = 24, 2, 60
SEGMENTS = ({"device": "mobile", "geo": "DE"}, {"device": "desktop", "geo": "DE"})


def _image(item: int, variant: int) -> str:
    return f"img-{item}-v{variant}"


def _colour(item: int, variant: int) -> str:
    return "red" if (item + variant) % 2 else "blue"


@pytest.fixture(scope="module")
def server() -> Iterator[EncoderServer]:
    srv = start_encoder_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def prefix(stack: EmbeddedStack) -> Iterator[str]:
    p = f"test:wire:{uuid.uuid4().hex[:8]}:"
    yield p
    client = redis.Redis.from_url(stack.redis_url)
    try:
        found = list(client.scan_iter(match=f"{p}*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


def _render(directory: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(ITEMS):
        for v in range(VARIANTS):
            grey = int(rng.integers(150, 250))
            side = int(rng.integers(70, 140))
            x, y = (int(c) for c in rng.integers(10, 214 - side, size=2))
            img = Image.new("RGB", (224, 224), (grey, grey, grey))
            img.paste(COLOURS[_colour(i, v)], (x, y, x + side, y + side))
            img.save(directory / f"{_image(i, v)}.png")


def _impressions() -> list[tuple[Impression, bool]]:
    """Mobile users click red (40% vs 10%), desktop users blue (30% vs 10%)."""
    out = []
    n = 0
    for i in range(ITEMS):
        for v in range(VARIANTS):
            red = _colour(i, v) == "red"
            for segment in SEGMENTS:
                mobile = segment["device"] == "mobile"
                ctr = (0.4 if red else 0.1) if mobile else (0.1 if red else 0.3)
                for j in range(PER_CELL):
                    imp = Impression(
                        event_id=f"e{n}",
                        impression_id=f"i{n}",
                        ts=1_800_000_000.0 + n,
                        item_id=f"item-{i}",
                        image_id=_image(i, v),
                        variant=f"v{v}",
                        title="a thing",
                        position=0,
                        segment=segment,
                    )
                    out.append((imp, j < ctr * PER_CELL))
                    n += 1
    return out


async def _stream(settings: Settings, shown: list[tuple[Impression, bool]]) -> dict[str, int]:
    """What the learner does with each batch (embed, so describe), and what the counters count."""
    client = aioredis.Redis.from_url(settings.redis_url)
    make = embedder_factory(settings, client)
    assert make is not None
    embedder = make()
    try:
        for start in range(0, len(shown), 500):
            batch = [imp for imp, _ in shown[start : start + 500]]
            found = await embedder.embed(batch)
            assert not any(e.error for e in found)
        counts = []
        for imp, clicked in shown:
            counts.append(LiveCount(imp, "impression"))
            if clicked:
                counts.append(LiveCount(imp, "click"))
        await RedisCounters(client, KeySpace(settings.redis_prefix)).apply_live(counts)
        tag = await embedder.cache_tag(IMAGE_ENCODER)
        ids = [_image(i, v) for i in range(ITEMS) for v in range(VARIANTS)]
        described = await read_descriptions(client, ids, tag, prefix=settings.redis_prefix)
        assert {i: d.attributes["colour"] for i, d in described.items()} == {
            _image(i, v): _colour(i, v) for i in range(ITEMS) for v in range(VARIANTS)
        }
        return dict(embedder.computed)
    finally:
        await embedder.close()
        await client.aclose()


def test_explain_answers_from_what_the_describer_measured(
    server: EncoderServer, stack: EmbeddedStack, prefix: str, tmp_path: Path
) -> None:
    _render(tmp_path)
    settings = Settings(
        redis_url=stack.redis_url,
        redis_prefix=prefix,
        checkpoint_dir=str(tmp_path / "models"),
        triton_url=server.grpc_url,
        image_dir=str(tmp_path),
    )
    computed = asyncio.run(_stream(settings, _impressions()))
    images = ITEMS * VARIANTS
    # one describer request per miss: every image embedded and described once
    assert computed[IMAGE_ENCODER] == images and computed[IMAGE_DESCRIBER] == images

    with TestClient(create_app(settings, MemoryModelStore())) as http:
        response = http.get("/explain", params={"n": 50})
        assert response.status_code == 200, response.text
        groups = {g["segment"]: g for g in response.json()["groups"]}
    mobile, desktop = groups["device=mobile"], groups["device=desktop"]
    assert mobile["images"] == images and mobile["unmeasured_images"] == 0

    def effect(group: dict[str, object], attribute: str) -> dict[str, object]:
        effects = [*group["up"], *group["down"]]  # type: ignore[misc]
        return next(e for e in effects if e["attribute"] == attribute)

    red_mobile, red_desktop = effect(mobile, "colour=red"), effect(desktop, "colour=red")
    assert red_mobile["lift"] > 0 and red_mobile["significant"]  # type: ignore[operator]
    assert red_desktop["lift"] < 0 and red_desktop["significant"]  # type: ignore[operator]
    # the describer's numeric measures are there too
    names = {e["attribute"] for e in [*mobile["up"], *mobile["down"]]}
    assert {"brightness", "scale"} & names
