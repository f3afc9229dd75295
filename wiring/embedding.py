"""How a process builds its embedder from :class:`~schemas.settings.Settings`.

``encoder_server`` knows nothing of settings: its client, image stores and
cache take plain arguments, so they can be used and tested on their own.
This module is the one place that reads the ``triton_*``, ``breaker_*`` and
``image_*`` settings and wires those parts together, for the worker and for
anything else (the demo's judge, benches) that must embed exactly as the
worker does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.cache import EmbeddingCache
from encoder_server.client.embedder import Embedder, ExampleEmbeddings
from encoder_server.client.image_store import CompositeImageStore, HttpImageStore, LocalImageStore
from encoder_server.client.triton_client import RequestObserver, TritonEmbeddingClient
from schemas.events import Impression
from schemas.settings import Settings
from wiring.connections import async_redis

__all__ = [
    "embed_once",
    "embedder_factory",
    "embedder_from_settings",
    "image_store_from_settings",
    "local_image_store_from_settings",
    "triton_client_from_settings",
]

log = logging.getLogger(__name__)


def triton_client_from_settings(
    settings: Settings, observer: RequestObserver | None = None
) -> TritonEmbeddingClient:
    """The client configured by the ``triton_*`` and ``breaker_*`` settings.

    ``observer`` hears of every request (the process's metrics, see
    :mod:`streams.telemetry`).
    """
    if not settings.triton_url:
        raise ValueError("BERTCTR_TRITON_URL is not set")
    return TritonEmbeddingClient(
        settings.triton_url,
        timeout_s=settings.triton_timeout_s,
        retries=settings.triton_retries,
        backoff_s=settings.triton_backoff_s,
        max_batch=settings.triton_max_batch,
        batch_window_s=settings.triton_batch_window_ms / 1000.0,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s),
        observer=observer,
    )


def local_image_store_from_settings(settings: Settings) -> LocalImageStore | None:
    """The local store of ``image_dir`` (None when it is not set)."""
    if not settings.image_dir:
        return None
    return LocalImageStore(settings.image_dir, settings.image_max_bytes)


def image_store_from_settings(settings: Settings) -> CompositeImageStore:
    """The store configured by ``image_dir`` and ``image_url_prefixes``."""
    local = local_image_store_from_settings(settings)
    prefixes = settings.url_prefixes
    http = (
        HttpImageStore(prefixes, settings.image_max_bytes, settings.image_fetch_timeout_s)
        if prefixes
        else None
    )
    log.info(
        "image store: local %s, %d allowed URL prefixes",
        settings.image_dir or "(none)",
        len(prefixes),
    )
    return CompositeImageStore(local, http)


def embedder_from_settings(
    settings: Settings,
    redis_client: aioredis.Redis,
    observer: RequestObserver | None = None,
    memo_size: int = 0,
    describe: bool = False,
) -> Embedder:
    """Triton client, image store and the Redis embedding cache, as configured.

    ``memo_size``: embeddings also kept in this process, in front of Redis
    (the scoring API; see :class:`~encoder_server.client.embedder.Embedder`).
    ``describe``: misses of the base image encoder go to ``image_describer``,
    which caches each image's description with its embedding (the learner).
    """
    return Embedder(
        triton_client_from_settings(settings, observer),
        image_store_from_settings(settings),
        EmbeddingCache(redis_client, settings.redis_prefix),
        memo_size=memo_size,
        describe=describe,
    )


def embedder_factory(
    settings: Settings, redis_client: aioredis.Redis, observer: RequestObserver | None = None
) -> Callable[[], Embedder] | None:
    """How the learner makes its embedder: only when Triton is configured.

    A factory, not an embedder: gRPC channels belong to the event loop they
    are made in, so the learner builds it on first use inside the worker's loop.
    It describes as it embeds: every image the stream sees gets its tags and
    attributes cached for ``/explain`` and ``/items``, in the requests the
    embeddings need anyway (the encoder alone where Triton has no describer).
    """
    if not settings.triton_url:
        log.info("BERTCTR_TRITON_URL unset: learning without image and title embeddings")
        return None
    return lambda: embedder_from_settings(settings, redis_client, observer, describe=True)


async def embed_once(
    settings: Settings, impressions: Sequence[Impression], image_model: str
) -> list[ExampleEmbeddings]:
    """Embed ``impressions`` once with ``image_model``, through the cache, and close everything.

    For one-shot processes (the fine-tuning job, the demo's judge): a Redis
    client and an embedder are opened for the call and closed after it.
    """
    cache = async_redis(settings)
    embedder = embedder_from_settings(settings, cache)
    try:
        return await embedder.embed(list(impressions), image_model=image_model)
    finally:
        await embedder.close()
        await cache.aclose()
