"""The learner's describing embedder on a real Triton that serves no describer: as before.

The fake encoder server (real Triton, stand-in encoders) binds only
``image_encoder`` and ``text_encoder``: the describer's request is refused
by Triton, so the embedder must embed with the encoder, give exactly the
encoder's embeddings, keep the breaker closed at the default settings
(3 retries, 5 failures), and not ask for the describer again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.cache import EmbeddingCache
from encoder_server.client.embedder import Embedder
from encoder_server.client.image_store import LocalImageStore
from encoder_server.client.triton_client import TritonEmbeddingClient
from schemas.events import Impression
from tests.integration.encoder_server.test_triton_client import VERSION, FakeTriton
from tests.integration.fake_encoder_server import fake_embed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plain_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTriton]:
    server = FakeTriton(tmp_path_factory.mktemp("triton"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _imp(n: int, image_id: str) -> Impression:
    return Impression(
        event_id=f"e{n}",
        impression_id=f"i{n}",
        ts=1_767_225_600.0 + n,
        item_id="item-1",
        image_id=image_id,
        position=0,
        segment={"device": "mobile", "geo": "DE"},
    )


async def test_without_a_describer_the_encoder_embeds_and_the_breaker_stays_closed(
    plain_triton: FakeTriton, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.png").write_bytes(f"image {name}".encode())
    client = TritonEmbeddingClient(
        plain_triton.url, retries=3, backoff_s=0.05, breaker=CircuitBreaker(5, 5.0)
    )
    # describe=True without a cache would be ignored: the cache is what makes it describe
    embedder = Embedder(client, LocalImageStore(tmp_path, 1 << 20), None, describe=True)
    assert embedder._describer is None
    cache = cast(EmbeddingCache, _NoCache())
    embedder = Embedder(client, LocalImageStore(tmp_path, 1 << 20), cache, describe=True)
    try:
        with caplog.at_level(logging.WARNING, logger="encoder_server.client.embedder"):
            first = await embedder.embed([_imp(0, "a"), _imp(1, "b")])
            second = await embedder.embed([_imp(2, "c")])
        for got, name in zip([*first, *second], "abc", strict=True):
            expected, _ = fake_embed(f"image {name}".encode(), VERSION)
            assert got.image is not None and not got.error
            np.testing.assert_allclose(got.image, expected, rtol=1e-6)
        assert client.breaker.allow()
        warnings = [r.message for r in caplog.records if "describer unavailable" in r.message]
        assert len(warnings) == 1
        assert embedder.computed[IMAGE_ENCODER] == 3 and "image_describer" not in embedder.computed
        assert plain_triton.requests_served(IMAGE_ENCODER) >= 2
    finally:
        await client.close()


class _NoCache:
    """An embedding cache that never holds anything (the describer needs one to be asked)."""

    prefix = "test:wire:unused:"
    ttl_ms = None
    redis = None

    async def get_many(self, model: str, version: object, keys: object) -> dict[str, object]:
        return {}

    async def put_many(self, model: str, version: object, vectors: object) -> None:
        return None
