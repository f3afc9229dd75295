"""What every request handler shares: settings, one Redis client, the model watcher, the scorer.

Built when the server starts (:func:`open_state`) and closed when it stops;
handlers get it through :func:`api_state`, so a test can build the app on
any Redis prefix and model store.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis
from fastapi import Request

from api.scoring import CandidateScorer
from api.serving import ModelWatcher
from api.telemetry import ApiMetrics
from encoder_server.client.embedder import Embedder
from encoder_server.client.image_store import LocalImageStore
from online_ctr.store import ModelStore
from schemas.keys import KeySpace
from schemas.settings import Settings
from wiring.connections import async_redis
from wiring.embedding import embedder_from_settings, local_image_store_from_settings
from wiring.models import model_store

__all__ = ["ApiState", "api_state", "close_state", "open_state"]

log = logging.getLogger(__name__)

#: embeddings the API keeps in process (about 10 KB each at most): a catalogue's worth
EMBEDDING_MEMO = 50_000


@dataclass
class ApiState:
    """The server's long-lived parts."""

    settings: Settings
    redis: aioredis.Redis
    keys: KeySpace
    watcher: ModelWatcher
    scorer: CandidateScorer
    embedder: Embedder | None
    #: the local image store (``BERTCTR_IMAGE_DIR``) the page's thumbnails come from
    images: LocalImageStore | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: this app's Prometheus registry (GET /metrics)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)


async def open_state(settings: Settings, store: ModelStore | None = None) -> ApiState:
    """Connect to Redis, load the newest model (if any) and start watching for newer ones."""
    client = async_redis(settings)
    watcher = ModelWatcher(store or model_store(settings), settings.api_model_poll_s)
    try:
        await asyncio.to_thread(watcher.refresh)
    except OSError as exc:
        log.warning("model store unavailable at start: %s", exc)
    metrics = ApiMetrics()
    embedder = (
        embedder_from_settings(settings, client, metrics.triton, EMBEDDING_MEMO)
        if settings.triton_url
        else None
    )
    scorer = CandidateScorer(watcher, embedder, settings.api_max_candidates)
    keys = KeySpace(settings.redis_prefix)
    state = ApiState(
        settings,
        client,
        keys,
        watcher,
        scorer,
        embedder,
        images=local_image_store_from_settings(settings),
        metrics=metrics,
    )
    state.tasks.append(asyncio.create_task(watcher.run(), name="model-watcher"))
    return state


async def close_state(state: ApiState) -> None:
    """Stop the watcher and close every connection."""
    for task in state.tasks:
        await state.watcher.stop(task)
    if state.embedder is not None:
        await state.embedder.close()
    await state.redis.aclose()


async def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the running server's state.

    ``async`` though it never waits: FastAPI runs a plain ``def`` dependency
    in its thread pool, a hop to another thread and back on every request
    (a tenth of a ``POST /score`` answered in ~1 ms).
    """
    return cast(ApiState, request.app.state.bertctr)
