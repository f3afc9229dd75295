"""Embedder: dedup, per-example failures, transient failures, versions (pure, fakes)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pytest

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded
from encoder_server.client.embedder import Embedder
from encoder_server.client.errors import (
    EncoderUnavailable,
    ImageNotFound,
    ImageRejected,
    StoreUnavailable,
)
from encoder_server.client.triton_client import InMemoryEmbeddingClient
from schemas.events import Impression


def fake_encoder(items: Sequence[bytes]) -> Encoded:
    """Embedding = (len, first byte); bytes starting with b"BAD" fail alone."""
    rows, errors = [], []
    for item in items:
        if item.startswith(b"BAD"):
            rows.append([0.0, 0.0])
            errors.append("not an image")
        else:
            rows.append([float(len(item)), float(item[0])])
            errors.append("")
    return Encoded(np.asarray(rows, dtype=np.float32), errors)


class FakeStore:
    def __init__(self, images: dict[str, bytes]) -> None:
        self.images = images
        self.fetches: list[str] = []
        self.down = False

    async def fetch(self, image_id: str, image_url: str | None) -> bytes:
        self.fetches.append(image_id)
        if self.down:
            raise StoreUnavailable("store down")
        if image_id == "refused":
            raise ImageRejected("not allow-listed")
        if image_id not in self.images:
            raise ImageNotFound(image_id)
        return self.images[image_id]


def imp(n: int, image_id: str, title: str = "red shoe") -> Impression:
    return Impression(
        event_id=f"e{n}",
        impression_id=f"i{n}",
        ts=1_767_225_600.0 + n,
        item_id="item-1",
        image_id=image_id,
        title=title,
        position=0,
        segment={"device": "mobile", "geo": "DE"},
    )


@pytest.fixture
def parts() -> tuple[InMemoryEmbeddingClient, FakeStore]:
    client = InMemoryEmbeddingClient(
        functions={IMAGE_ENCODER: fake_encoder, TEXT_ENCODER: fake_encoder},
        versions={IMAGE_ENCODER: 3, TEXT_ENCODER: 1},
    )
    store = FakeStore({"a": b"AAAA", "b": b"BB", "bad": b"BAD!"})
    return client, store


def test_distinct_images_and_titles_are_embedded_once(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    embedder = Embedder(client, store)
    batch = [imp(i, "a" if i % 2 else "b", title="red shoe" if i < 5 else "") for i in range(10)]
    out = asyncio.run(embedder.embed(batch))
    assert sorted(store.fetches) == ["a", "b"]
    assert client.items_sent == 2 + 1  # two images, one non-empty title
    assert [o.image for o in out[:2]] == [(2.0, float(ord("B"))), (4.0, float(ord("A")))]
    assert out[0].title == (8.0, float(ord("r")))
    assert out[7].title is None and not out[7].error  # empty title: nothing to embed
    assert embedder.computed == {IMAGE_ENCODER: 2, TEXT_ENCODER: 1}
    assert embedder.known_versions() == {IMAGE_ENCODER: 3, TEXT_ENCODER: 1}


def test_bad_missing_and_refused_images_fail_alone_and_are_remembered(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    embedder = Embedder(client, store)
    batch = [imp(0, "a"), imp(1, "bad"), imp(2, "missing"), imp(3, "refused"), imp(4, "b")]
    out = asyncio.run(embedder.embed(batch))
    assert [bool(o.error) for o in out] == [False, True, True, True, False]
    assert out[1].error == "bad image: not an image"
    assert out[2].error.startswith("image unavailable")
    assert out[3].error.startswith("image unavailable") and "allow-listed" in out[3].error
    assert out[1].image is None and out[4].image == (2.0, float(ord("B")))
    store.fetches.clear()
    again = asyncio.run(embedder.embed([imp(5, "bad"), imp(6, "missing")]))
    assert all(o.error for o in again)
    assert store.fetches == []  # permanent failures are not fetched again


def test_transient_failures_raise_instead_of_dropping(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    embedder = Embedder(client, store)
    client.available = False
    with pytest.raises(EncoderUnavailable):
        asyncio.run(embedder.embed([imp(0, "a")]))
    client.available = True
    store.down = True
    with pytest.raises(StoreUnavailable):
        asyncio.run(embedder.embed([imp(0, "a")]))
    store.down = False
    assert asyncio.run(embedder.embed([imp(0, "a")]))[0].image == (4.0, float(ord("A")))


def test_a_new_served_version_is_picked_up_after_the_ttl(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    embedder = Embedder(client, store, version_ttl_s=0.0)
    asyncio.run(embedder.embed([imp(0, "a")]))
    client.versions[IMAGE_ENCODER] = 4
    asyncio.run(embedder.embed([imp(1, "a")]))
    assert embedder.known_versions()[IMAGE_ENCODER] == 4


def test_close_releases_the_client_and_the_store(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    closed: list[bool] = []

    async def close_store() -> None:
        closed.append(True)

    store.close = close_store  # type: ignore[attr-defined]
    asyncio.run(Embedder(client, store).close())
    assert client.closed and closed == [True]


class CountingCache:
    """The embedding cache's interface, in memory, counting reads (a fake for the memo test)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str, str], tuple[float, ...]] = {}
        self.reads = 0

    async def get_many(self, model: str, version: Any, keys: Any) -> dict[str, Any]:
        self.reads += 1
        return {
            k: self.data[(model, str(version), k)]
            for k in keys
            if (model, str(version), k) in self.data
        }

    async def put_many(self, model: str, version: Any, vectors: dict[str, Any]) -> int:
        for k, v in vectors.items():
            self.data[(model, str(version), k)] = v
        return len(vectors)


def test_the_memo_answers_repeat_requests_without_the_cache_and_forgets_the_oldest(
    parts: tuple[InMemoryEmbeddingClient, FakeStore],
) -> None:
    client, store = parts
    cache = CountingCache()
    embedder = Embedder(client, store, cast(Any, cache), memo_size=3)
    batch = [imp(0, "a"), imp(1, "b")]  # two images, one title: three memo entries
    first = asyncio.run(embedder.embed(batch))
    reads = cache.reads
    again = asyncio.run(embedder.embed(batch))
    assert again == first
    assert cache.reads == reads  # all from the memo: no Redis round trip
    assert client.items_sent == 3  # and nothing encoded twice

    asyncio.run(embedder.embed([imp(2, "bad")]))  # a failure is not memoised
    other = asyncio.run(embedder.embed([imp(3, "a", title="blue hat")]))  # evicts the oldest
    assert other[0].image == first[0].image
    assert len(embedder._memo) == 3
    asyncio.run(embedder.embed(batch))
    assert cache.reads > reads  # something was forgotten and read back from the cache
    assert client.items_sent == 5  # after the first batch only "bad" and "blue hat" were sent

    no_memo = Embedder(client, store, cast(Any, cache))
    asyncio.run(no_memo.embed(batch))
    asyncio.run(no_memo.embed(batch))
    assert no_memo._memo == {}
