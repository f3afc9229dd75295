"""Embeddings cached in Redis, keyed by model *and version*, so each is made once.

An image is shown thousands of times and a title is shared by many images;
encoding either again on every impression would make Triton the bottleneck.
Keys carry the served encoder version, so promoting a new version misses the
cache once per item and never mixes vectors of two versions in one model
(the key is :meth:`schemas.keys.KeySpace.embedding`; the value float32
little-endian bytes).

``version`` is the client's cache tag: the served version number, with the
head's fingerprint after a dash when Triton publishes one (``2-9f3c...``).

Image items are keyed by ``image_id``; titles by :func:`title_key`, a digest
of the text, so the same title is embedded once per version whatever image
it captions. Raw little-endian float32 is compact (1.5 KiB for 384 dims) and
readable from any language.

Failures: Redis errors are not wrapped. ``get_many`` and ``put_many`` raise
:class:`redis.exceptions.RedisError` (``ConnectionError`` and ``TimeoutError``
when the server is down or slow); callers treat that as a cache miss and
recompute, because a cache outage must never stop learning. A stored value
that does not decode (wrong length) is logged and counted as a miss.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from schemas.keys import KeySpace

__all__ = ["EmbeddingCache", "decode_vector", "encode_vector", "title_key"]

log = logging.getLogger(__name__)

Vector = tuple[float, ...]
_FLOAT32_LE = np.dtype("<f4")


@functools.lru_cache(maxsize=1 << 14)
def title_key(title: str) -> str:
    """Cache key of a title: ``t:`` + BLAKE2b hex digest of its UTF-8 text.

    Memoised: a catalogue's titles come again and again (the scoring API
    asks for a hundred per request).
    """
    return "t:" + hashlib.blake2b(title.encode("utf-8"), digest_size=16).hexdigest()


def encode_vector(vector: Sequence[float]) -> bytes:
    """A vector as float32 little-endian bytes."""
    return np.asarray(vector, dtype=_FLOAT32_LE).tobytes()


def decode_vector(raw: bytes) -> Vector | None:
    """The vector stored as ``raw``; ``None`` when it is not float32 bytes."""
    if not raw or len(raw) % _FLOAT32_LE.itemsize:
        return None
    return tuple(np.frombuffer(raw, dtype=_FLOAT32_LE).tolist())


class EmbeddingCache:
    """Batch get and put of embeddings in Redis.

    Parameters
    ----------
    redis
        An asyncio Redis client returning bytes (``decode_responses`` off).
    prefix
        Key prefix of this deployment (``Settings.redis_prefix``).
    ttl_s
        Expiry of stored embeddings; ``None`` keeps them until evicted.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str, *, ttl_s: float | None = None) -> None:
        kwargs: dict[str, Any] = redis.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ValueError("EmbeddingCache needs a Redis client with decode_responses=False")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.redis = redis
        self.prefix = prefix
        self.keys = KeySpace(prefix)
        self.ttl_ms = None if ttl_s is None else max(1, round(ttl_s * 1000))

    def key(self, model: str, version: int | str, item_key: str) -> str:
        """The Redis key of one item's embedding."""
        return self.keys.embedding(model, version, item_key)

    async def get_many(
        self, model: str, version: int | str, keys: Iterable[str]
    ) -> dict[str, Vector]:
        """The cached vectors among ``keys`` (one MGET); absent keys are left out.

        Raises :class:`redis.exceptions.RedisError` when Redis fails.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        raws = await self.redis.mget([self.key(model, version, k) for k in wanted])
        found: dict[str, Vector] = {}
        for item_key, raw in zip(wanted, raws, strict=True):
            if raw is None:
                continue
            vector = decode_vector(raw) if isinstance(raw, bytes) else None
            if vector is None:
                log.warning(
                    "ignoring undecodable cached embedding %s (%d bytes)",
                    self.key(model, version, item_key),
                    len(raw),
                )
                continue
            found[item_key] = vector
        return found

    async def put_many(
        self, model: str, version: int | str, vectors: Mapping[str, Sequence[float]]
    ) -> None:
        """Store ``vectors`` in one pipelined round trip (SET, with the TTL if any).

        Raises :class:`redis.exceptions.RedisError` when Redis fails.
        """
        if not vectors:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_key, vector in vectors.items():
                pipe.set(self.key(model, version, item_key), encode_vector(vector), px=self.ttl_ms)
            await pipe.execute()
