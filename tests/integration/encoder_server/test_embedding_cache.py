"""The embedding cache against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from encoder_server.client.cache import EmbeddingCache, title_key
from schemas.keys import KeySpace

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except RedisError as exc:  # pragma: no cover - environment problem, not a test result
        pytest.fail(f"no Redis at {REDIS_URL}: {exc}")
    yield client
    await client.aclose()


@pytest.fixture
async def cache(redis_client: aioredis.Redis) -> AsyncIterator[EmbeddingCache]:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield EmbeddingCache(redis_client, prefix)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def test_round_trip_as_float32_little_endian(
    cache: EmbeddingCache, redis_client: aioredis.Redis
) -> None:
    vectors = {"img-1": (0.1, -0.2, 0.3), "img-2": (1.0, 2.0, 3.5)}
    await cache.put_many("image_encoder", 3, vectors)
    got = await cache.get_many("image_encoder", 3, ["img-1", "img-2", "img-3"])
    assert set(got) == {"img-1", "img-2"}
    for key, vector in vectors.items():
        expected = np.asarray(vector, dtype=np.float32).tolist()
        assert list(got[key]) == expected
    raw = await redis_client.get(KeySpace(cache.prefix).embedding("image_encoder", 3, "img-1"))
    assert raw == np.asarray(vectors["img-1"], dtype="<f4").tobytes()


async def test_versions_and_models_do_not_mix(cache: EmbeddingCache) -> None:
    await cache.put_many("image_encoder", 1, {"a": (1.0, 0.0)})
    assert await cache.get_many("image_encoder", 2, ["a"]) == {}
    assert await cache.get_many("text_encoder", 1, ["a"]) == {}
    assert await cache.get_many("image_encoder", 1, ["a"]) == {"a": (1.0, 0.0)}


async def test_empty_calls_do_not_touch_redis(cache: EmbeddingCache) -> None:
    await cache.put_many("image_encoder", 1, {})
    assert await cache.get_many("image_encoder", 1, []) == {}


async def test_ttl_is_set(redis_client: aioredis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    cache = EmbeddingCache(redis_client, prefix, ttl_s=60)
    await cache.put_many("text_encoder", 1, {"t:x": (0.5,)})
    key = cache.key("text_encoder", 1, "t:x")
    try:
        ttl_ms = await redis_client.pttl(key)
        assert 0 < ttl_ms <= 60_000
    finally:
        await redis_client.delete(key)


async def test_undecodable_value_is_a_miss(
    cache: EmbeddingCache, redis_client: aioredis.Redis
) -> None:
    await redis_client.set(cache.key("image_encoder", 1, "bad"), b"\x00\x01\x02")
    await cache.put_many("image_encoder", 1, {"good": (0.25,)})
    assert await cache.get_many("image_encoder", 1, ["bad", "good"]) == {"good": (0.25,)}


def test_title_key_is_stable_and_distinct() -> None:
    assert title_key("Red shoes") == title_key("Red shoes")
    assert title_key("Red shoes") != title_key("red shoes")
    assert title_key("Ünïcode ✓").startswith("t:")
    assert len(title_key("")) == 2 + 32


async def test_redis_down_raises_redis_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioredis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    cache = EmbeddingCache(client, "test:down:")
    try:
        with pytest.raises(RedisError):
            await cache.get_many("image_encoder", 1, ["a"])
        with pytest.raises(RedisError):
            await cache.put_many("image_encoder", 1, {"a": (1.0,)})
    finally:
        await client.aclose()


async def test_decode_responses_client_is_refused() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses"):
            EmbeddingCache(client, "test:")
    finally:
        await client.aclose()
