"""What is in each image, for a user of the library: cache first, then Triton's describer.

``await Describer(...).describe(image_ids)`` returns
``{image_id: {"tags": [{"label", "score"}], "tag_source", "attributes": {...}}}``
(:meth:`~encoder_server.description.Description.as_dict`). Descriptions are
cached in Redis like embeddings, per image and *image encoder cache tag*
(served version, plus its head's fingerprint): key
:meth:`schemas.keys.KeySpace.description`, the value the description's JSON.
A miss is fetched from the image store and sent to ``image_describer``,
whose one request also returns the embedding, so it is cached as well.

For readers that only look up what is there (``/explain``, ``/items``),
:func:`read_descriptions` takes a Redis client, the image ids and the
encoder version tag, and needs neither Triton nor an image store.

Failures as in :mod:`~encoder_server.client.embedder`: Triton or store down
raises (``EncoderUnavailable`` / ``StoreUnavailable``); a missing or bad
image is that image's ``{"error": reason}``; a Redis outage counts as a
miss and a failed write is only logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from redis.exceptions import RedisError

from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.cache import EmbeddingCache
from encoder_server.client.errors import ImageUnavailable
from encoder_server.client.image_store import ImageStore
from encoder_server.client.triton_client import Described
from encoder_server.description import Description
from schemas.keys import KeySpace

__all__ = ["Describer", "DescribingClient", "read_descriptions", "write_descriptions"]

log = logging.getLogger(__name__)


class DescribingClient(Protocol):
    """The part of the encoder client the describer needs (Triton's or the in-memory one)."""

    async def describe(self, items: list[bytes]) -> list[Described]: ...

    async def cache_tag(self, model: str) -> str: ...


async def read_descriptions(
    redis: Any,
    image_ids: Iterable[str],
    encoder_version: int | str,
    *,
    prefix: str = "bertctr:",
    model: str = IMAGE_ENCODER,
) -> dict[str, Description]:
    """The cached descriptions of ``image_ids`` (one MGET); absent or unreadable ones left out.

    ``redis`` is an asyncio Redis client (bytes or decoded responses);
    ``encoder_version`` the image encoder's cache tag
    (``EmbeddingClient.cache_tag``, e.g. ``1-9f3c...``). Raises
    :class:`redis.exceptions.RedisError` when Redis fails.
    """
    wanted = list(dict.fromkeys(image_ids))
    if not wanted:
        return {}
    keys = KeySpace(prefix)
    raws = await redis.mget([keys.description(model, encoder_version, i) for i in wanted])
    found: dict[str, Description] = {}
    for image_id, raw in zip(wanted, raws, strict=True):
        if raw is None:
            continue
        try:
            found[image_id] = Description.from_json(raw)
        except ValueError as exc:
            log.warning("ignoring unreadable cached description of %s: %s", image_id, exc)
    return found


async def write_descriptions(
    redis: Any,
    descriptions: Mapping[str, Description],
    encoder_version: int | str,
    *,
    prefix: str = "bertctr:",
    model: str = IMAGE_ENCODER,
    ttl_s: float | None = None,
) -> None:
    """Store ``descriptions`` (JSON) in one pipelined round trip, with the TTL if any."""
    if not descriptions:
        return
    keys = KeySpace(prefix)
    px = None if ttl_s is None else max(1, round(ttl_s * 1000))
    async with redis.pipeline(transaction=False) as pipe:
        for image_id, description in descriptions.items():
            pipe.set(
                keys.description(model, encoder_version, image_id), description.to_json(), px=px
            )
        await pipe.execute()


class Describer:
    """Tags and attributes of images, through the cache, the image store and Triton.

    Parameters
    ----------
    client
        The encoder client (:class:`~encoder_server.client.triton_client.TritonEmbeddingClient`).
    store
        Where image bytes come from.
    cache
        The embedding cache; its Redis client and prefix also hold the
        descriptions, and the embeddings the describer returns are stored
        in it. ``None``: nothing is cached.
    """

    def __init__(
        self, client: DescribingClient, store: ImageStore, cache: EmbeddingCache | None = None
    ) -> None:
        self.client = client
        self.store = store
        self.cache = cache
        #: images described by Triton (not found in the cache)
        self.computed = 0

    async def describe(
        self, image_ids: Iterable[str], image_urls: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """``{image_id: {"tags": [...], "tag_source": ..., "attributes": {...}}}``.

        An image that cannot be described maps to ``{"error": reason}``.
        """
        wanted = list(dict.fromkeys(image_ids))
        tag = await self.client.cache_tag(IMAGE_ENCODER)
        found = await self._cached(wanted, tag)
        missing = [i for i in wanted if i not in found]
        errors: dict[str, str] = {}
        if missing:
            fresh, errors = await self._compute(missing, image_urls or {}, tag)
            found.update(fresh)
        return {
            i: found[i].as_dict() if i in found else {"error": errors.get(i, "not described")}
            for i in wanted
        }

    async def _cached(self, image_ids: list[str], tag: str) -> dict[str, Description]:
        if self.cache is None or not image_ids:
            return {}
        try:
            return await read_descriptions(
                self.cache.redis, image_ids, tag, prefix=self.cache.prefix
            )
        except (RedisError, OSError) as exc:
            log.warning("description cache unavailable, asking Triton: %s", exc)
            return {}

    async def _compute(
        self, image_ids: list[str], urls: Mapping[str, str], tag: str
    ) -> tuple[dict[str, Description], dict[str, str]]:
        fetched = await asyncio.gather(
            *(self.store.fetch(i, urls.get(i)) for i in image_ids), return_exceptions=True
        )
        errors: dict[str, str] = {}
        to_send: dict[str, bytes] = {}
        for image_id, result in zip(image_ids, fetched, strict=True):
            if isinstance(result, ImageUnavailable):
                errors[image_id] = f"image unavailable: {result}"
            elif isinstance(result, BaseException):
                raise result  # transient (store down): the caller waits and retries
            else:
                to_send[image_id] = result
        if not to_send:
            return {}, errors
        results = await self.client.describe(list(to_send.values()))
        fresh: dict[str, Description] = {}
        vectors: dict[str, tuple[float, ...]] = {}
        for image_id, got in zip(to_send, results, strict=True):
            if not got.ok or got.vector is None:
                errors[image_id] = f"bad image: {got.error or 'no description returned'}"
                continue
            try:
                fresh[image_id] = Description.from_json(got.description)
            except ValueError as exc:
                errors[image_id] = str(exc)
                continue
            vectors[image_id] = got.vector
        self.computed += len(fresh)
        await self._store(fresh, vectors, tag)
        return fresh, errors

    async def _store(
        self,
        descriptions: dict[str, Description],
        vectors: dict[str, tuple[float, ...]],
        tag: str,
    ) -> None:
        if self.cache is None or not descriptions:
            return
        try:
            await write_descriptions(
                self.cache.redis,
                descriptions,
                tag,
                prefix=self.cache.prefix,
                ttl_s=None if self.cache.ttl_ms is None else self.cache.ttl_ms / 1000,
            )
            await self.cache.put_many(IMAGE_ENCODER, tag, vectors)
        except (RedisError, OSError) as exc:
            log.warning("could not cache %d descriptions: %s", len(descriptions), exc)
