"""Embedder with ``describe=True``: misses go to the describer, descriptions are cached (fakes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import SimpleNamespace, TracebackType
from typing import Any, cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded, served_name
from encoder_server.client.cache import EmbeddingCache
from encoder_server.client.describer import read_descriptions
from encoder_server.client.embedder import Embedder
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.client.triton_client import InMemoryEmbeddingClient
from encoder_server.description import Description, Tag
from schemas.tensors import IMAGE_DESCRIBER
from tests.unit.encoder_server.client.test_embedder import FakeStore, fake_encoder, imp

PREFIX = "test:wire:"
V2 = served_name(IMAGE_ENCODER, 2)


class MemoryRedis:
    """The few asyncio Redis calls the caches make (MGET, pipelined SET), in a dict."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.mgets = 0
        self.down = False
        self.connection_pool = SimpleNamespace(connection_kwargs={})

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if self.down:
            raise RedisConnectionError("redis down")
        self.mgets += 1
        return [self.data.get(k) for k in keys]

    def pipeline(self, transaction: bool = False) -> MemoryPipeline:
        return MemoryPipeline(self)


class MemoryPipeline:
    def __init__(self, redis: MemoryRedis) -> None:
        self.redis = redis
        self.sets: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> MemoryPipeline:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def set(self, key: str, value: bytes | str, px: int | None = None) -> None:
        self.sets.append((key, value.encode() if isinstance(value, str) else value))

    async def execute(self) -> list[bool]:
        if self.redis.down:
            raise RedisConnectionError("redis down")
        self.redis.data.update(self.sets)
        return [True] * len(self.sets)


def fake_describe(items: Sequence[bytes]) -> tuple[Encoded, list[str]]:
    """The fake encoder's embedding, and a description naming the image's first byte."""
    encoded = fake_encoder(items)
    texts = [
        ""
        if error
        else Description((Tag(chr(item[0]), 0.9),), {"brightness": len(item) / 10}).to_json()
        for item, error in zip(items, encoded.errors, strict=True)
    ]
    return encoded, texts


def parts(describer: bool = True) -> tuple[InMemoryEmbeddingClient, FakeStore, MemoryRedis]:
    client = InMemoryEmbeddingClient(
        functions={IMAGE_ENCODER: fake_encoder, TEXT_ENCODER: fake_encoder, V2: fake_encoder},
        versions={IMAGE_ENCODER: 3, TEXT_ENCODER: 1, V2: 2},
    )
    if describer:
        client.describe_fn = fake_describe
    store = FakeStore({"a": b"AAAA", "b": b"BB", "bad": b"BAD!"})
    return client, store, MemoryRedis()


def embedder(
    client: InMemoryEmbeddingClient, store: FakeStore, redis: MemoryRedis, **kw: Any
) -> Embedder:
    return Embedder(client, store, EmbeddingCache(cast(Any, redis), PREFIX), describe=True, **kw)


def cached(redis: MemoryRedis, ids: list[str], tag: str = "3") -> dict[str, Description]:
    return asyncio.run(read_descriptions(cast(Any, redis), ids, tag, prefix=PREFIX))


def test_misses_are_described_in_the_request_that_embeds_them() -> None:
    client, store, redis = parts()
    plain_client, plain_store, plain_redis = parts(describer=False)
    batch = [imp(0, "a"), imp(1, "b"), imp(2, "a")]
    got = asyncio.run(embedder(client, store, redis).embed(batch))
    plain = asyncio.run(
        Embedder(plain_client, plain_store, EmbeddingCache(cast(Any, plain_redis), PREFIX)).embed(
            batch
        )
    )
    assert got == plain  # the same embeddings as the encoder's
    assert client.infer_requests == plain_client.infer_requests == 2  # image + title, no more
    found = cached(redis, ["a", "b"])
    assert found["a"].tags == (Tag("A", 0.9),) and found["b"].attributes == {"brightness": 0.2}


def test_described_images_are_not_asked_again_nor_looked_up_again() -> None:
    client, store, redis = parts()
    e = embedder(client, store, redis)
    asyncio.run(e.embed([imp(0, "a"), imp(1, "b")]))
    requests, mgets = client.infer_requests, redis.mgets
    asyncio.run(e.embed([imp(2, "a"), imp(3, "b")]))
    assert client.infer_requests == requests
    assert redis.mgets == mgets + 2  # the embeddings (image, title); descriptions remembered
    assert e.computed == {IMAGE_ENCODER: 2, TEXT_ENCODER: 1, IMAGE_DESCRIBER: 2}


def test_an_image_embedded_without_a_description_is_described_once() -> None:
    client, store, redis = parts()
    # the scoring API (no describing) embedded "a" first
    asyncio.run(
        Embedder(client, store, EmbeddingCache(cast(Any, redis), PREFIX)).embed([imp(0, "a")])
    )
    assert cached(redis, ["a"]) == {}
    e = embedder(client, store, redis)
    asyncio.run(e.embed([imp(1, "a"), imp(2, "b")]))
    assert set(cached(redis, ["a", "b"])) == {"a", "b"}  # "a" rode along with "b"'s miss
    assert e.computed[IMAGE_ENCODER] == 1 and e.computed[IMAGE_DESCRIBER] == 2
    requests = client.infer_requests
    asyncio.run(e.embed([imp(3, "a"), imp(4, "b")]))
    assert client.infer_requests == requests


def test_bad_images_fail_alone_as_with_the_encoder() -> None:
    client, store, redis = parts()
    e = embedder(client, store, redis)
    got = asyncio.run(e.embed([imp(0, "a"), imp(1, "bad"), imp(2, "missing")]))
    assert got[0].image is not None and not got[0].error
    assert got[1].error == "bad image: not an image"
    assert got[2].error.startswith("image unavailable")
    assert set(cached(redis, ["a", "bad", "missing"])) == {"a"}


def test_without_a_describer_the_encoder_embeds_and_it_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, store, redis = parts(describer=False)
    e = embedder(client, store, redis, describer_retry_s=0.0)  # tried again at every batch
    with caplog.at_level(logging.WARNING, logger="encoder_server.client.embedder"):
        first = asyncio.run(e.embed([imp(0, "a")]))
        asyncio.run(e.embed([imp(1, "b")]))
    assert first[0].image == (4.0, 65.0)
    assert [r.message for r in caplog.records if "describer" in r.message] == [
        caplog.records[0].message
    ]
    assert e.computed == {IMAGE_ENCODER: 2, TEXT_ENCODER: 1}
    assert cached(redis, ["a", "b"]) == {}

    client.describe_fn = fake_describe  # the describer is served again
    asyncio.run(e.embed([imp(2, "a"), imp(3, "b")]))
    assert set(cached(redis, ["a", "b"])) == {"a", "b"}  # described on their next showing


def test_the_describer_is_left_alone_until_the_retry_time() -> None:
    client, store, redis = parts(describer=False)
    e = embedder(client, store, redis, describer_retry_s=3600.0)
    asyncio.run(e.embed([imp(0, "a")]))
    client.describe_fn = fake_describe
    asyncio.run(e.embed([imp(1, "b")]))
    assert cached(redis, ["a", "b"]) == {}


def test_an_outage_still_raises_so_the_learner_waits() -> None:
    client, store, redis = parts()
    client.available = False
    e = embedder(client, store, redis)
    with pytest.raises(EncoderUnavailable):
        asyncio.run(e.embed([imp(0, "a")]))
    client.available = True
    e.describer_retry_s = 0.0
    e._describer_off_until = 0.0
    asyncio.run(e.embed([imp(1, "a")]))
    assert set(cached(redis, ["a"])) == {"a"}


def test_a_served_version_other_than_the_base_is_embedded_by_its_encoder_only() -> None:
    client, store, redis = parts()
    e = embedder(client, store, redis)
    got = asyncio.run(e.embed([imp(0, "a")], image_model=V2))
    assert got[0].image == (4.0, 65.0)
    assert cached(redis, ["a"], "2") == {} and cached(redis, ["a"]) == {}
    assert IMAGE_DESCRIBER not in e.computed


def test_a_redis_outage_still_embeds() -> None:
    client, store, redis = parts()
    redis.down = True
    got = asyncio.run(embedder(client, store, redis).embed([imp(0, "a")]))
    assert got[0].image == (4.0, 65.0) and not got[0].error
