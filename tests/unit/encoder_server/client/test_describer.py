"""Describer over the in-memory client (no cache): ids in, descriptions or errors out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from encoder_server.base import IMAGE_ENCODER, Encoded
from encoder_server.client.describer import Describer
from encoder_server.client.errors import ImageUnavailable
from encoder_server.client.triton_client import InMemoryEmbeddingClient
from encoder_server.description import Description, Tag


class Store:
    async def fetch(self, image_id: str, image_url: str | None = None) -> bytes:
        if image_id == "gone":
            raise ImageUnavailable("no such image")
        return image_id.encode()


def fake_describe(items: Sequence[bytes]) -> tuple[Encoded, list[str]]:
    errors = ["cannot decode" if x == b"bad" else "" for x in items]
    texts = [
        "" if e else Description((Tag(x.decode(), 0.9),), {"colour": "red"}).to_json()
        for x, e in zip(items, errors, strict=True)
    ]
    return Encoded(np.ones((len(items), 4), dtype=np.float32), errors), texts


async def test_describe_maps_each_id_to_its_description_or_error() -> None:
    client = InMemoryEmbeddingClient(functions={IMAGE_ENCODER: lambda xs: fake_describe(xs)[0]})
    client.describe_fn = fake_describe
    describer = Describer(client, Store())
    got = await describer.describe(["a", "gone", "bad", "a"])
    assert list(got) == ["a", "gone", "bad"]
    assert got["a"] == {
        "tags": [{"label": "a", "score": 0.9}],
        "tag_source": "imagenet",
        "attributes": {"colour": "red"},
    }
    assert got["gone"]["error"].startswith("image unavailable")
    assert got["bad"]["error"] == "bad image: cannot decode"
    assert describer.computed == 1 and client.infer_requests == 1
