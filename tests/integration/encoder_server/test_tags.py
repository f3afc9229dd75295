"""What is in each image, from the real ``bertctr encoder serve`` (Triton) and the real Redis.

One server for the module (as the other encoder modules start theirs): the
``image_describer`` model answers with embedding, tags and attributes in one
request; the :class:`Describer` caches them per image and encoder cache tag,
so a second call never reaches Triton.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from PIL import Image, ImageFilter

from bertctr.harness.encoders import EncoderServer, start_encoder_server
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.cache import EmbeddingCache
from encoder_server.client.describer import Describer, read_descriptions
from encoder_server.client.image_store import LocalImageStore
from encoder_server.client.triton_client import TritonEmbeddingClient
from simulator.catalogue import COLOURS

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def server() -> Iterator[EncoderServer]:
    srv = start_encoder_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    red = Image.new("RGB", (224, 224), (235, 235, 235))
    red.paste(COLOURS["red"], (62, 62, 162, 162))
    red.save(tmp_path / "red.png")
    red.filter(ImageFilter.GaussianBlur(4)).save(tmp_path / "red-blurred.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"test:tags:{uuid.uuid4().hex[:8]}:"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_describe_tags_measures_and_caches(
    server: EncoderServer, images: Path, redis_client: aioredis.Redis
) -> None:
    prefix: str = redis_client.test_prefix  # type: ignore[attr-defined]
    client = TritonEmbeddingClient(server.grpc_url, retries=1)
    describer = Describer(
        client, LocalImageStore(images, 1 << 20), EmbeddingCache(redis_client, prefix)
    )
    try:
        ids = ["red", "red-blurred", "broken", "missing"]
        first = await describer.describe(ids)
        assert describer.computed == 2 and client.infer_requests == 1
        red, blurred = first["red"], first["red-blurred"]
        assert red["attributes"]["colour"] == "red"
        assert blurred["attributes"]["sharpness"] < red["attributes"]["sharpness"]
        assert red["tag_source"] == "imagenet" and len(red["tags"]) == 5
        assert all(0 <= t["score"] <= 1 for t in red["tags"])
        assert "error" in first["broken"] and "error" in first["missing"]

        # a second call comes from the cache: no request reaches Triton
        second = await describer.describe(["red", "red-blurred"])
        assert second == {"red": red, "red-blurred": blurred}
        assert client.infer_requests == 1 and describer.computed == 2

        # what /explain and /items read: Redis, image ids, the encoder's cache tag
        tag = await client.cache_tag(IMAGE_ENCODER)
        cached = await read_descriptions(redis_client, ["red", "nope"], tag, prefix=prefix)
        assert list(cached) == ["red"] and cached["red"].as_dict() == red
        # the embedding came with it, equal to the embedding path's
        vectors = await EmbeddingCache(redis_client, prefix).get_many(IMAGE_ENCODER, tag, ["red"])
        (embedded,) = await client.embed(IMAGE_ENCODER, [(images / "red.png").read_bytes()])
        assert embedded.vector is not None
        np.testing.assert_allclose(vectors["red"], embedded.vector, atol=1e-5)
    finally:
        await client.close()
