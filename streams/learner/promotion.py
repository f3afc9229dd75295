"""The learner agent's side of encoder promotion: which versions to embed with, and when.

The decision itself is pure (:class:`online_ctr.promotion.duel.EncoderDuel`); this
module connects it to the world:

* it hears announcements (:class:`~streams.learner.versions.VersionWatcher`) and
  starts a challenge for an image-encoder version not judged before;
* it embeds each batch a second time with the challenger's served model.
  The champion's embeddings wait out any Triton outage (nothing is learned
  without them); the challenger's do not: if its model cannot be reached
  once the champion's could, the challenger is retired ("unavailable"), so
  a broken version can never stall the stream;
* it publishes the duel's status and decision counts to Redis, where
  ``bertctr stats --json`` shows them under ``encoder``.

Scoring always uses the champion; only a promotion changes which served
model the champion's embeddings come from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.embedder import Embedder, ExampleEmbeddings
from encoder_server.client.errors import EncoderUnavailable, StoreUnavailable
from online_ctr.promotion.duel import EncoderDuel
from schemas.events import Impression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.learner.versions import VersionWatcher

__all__ = ["Promotion"]

log = logging.getLogger(__name__)


class Promotion:
    """Announcements in, challenger embeddings, status out."""

    def __init__(self, settings: Settings, watcher: VersionWatcher | None = None) -> None:
        self.settings = settings
        self.watcher = watcher if watcher is not None else VersionWatcher(settings)
        #: embedder versions by served name, for the status (numbers, not just names)
        self.versions: dict[str, int] = {}

    async def listen(self, duel: EncoderDuel) -> None:
        """Start a challenge for each newly announced image-encoder version."""
        for announced in await self.watcher.poll():
            if announced.model != IMAGE_ENCODER:
                continue
            if announced.served_name in duel.judged:
                log.info("encoder %s already judged; not again", announced.served_name)
                continue
            s = self.settings
            duel.challenge(
                announced.served_name,
                alpha=s.promotion_alpha,
                margin=s.promotion_margin,
                clip=s.promotion_clip,
                max_examples=s.promotion_max_examples,
                min_examples=min(s.promotion_min_examples, s.promotion_max_examples),
            )
            self.versions[announced.served_name] = announced.version

    async def challenger_embeddings(
        self, duel: EncoderDuel, embedder: Embedder | None, batch: Sequence[Impression]
    ) -> list[ExampleEmbeddings | None] | None:
        """The challenger's embeddings of ``batch`` (None: no challenger, or it was retired)."""
        model = duel.challenger_version
        if model is None or embedder is None or not batch:
            return None
        try:
            found = await embedder.embed(batch, image_model=model)
        except (EncoderUnavailable, StoreUnavailable) as exc:
            log.warning("challenger %s unreachable (%s): retired", model, exc)
            duel.abandon(f"unavailable: {exc}")
            return None
        return list(found)

    def status(self, duel: EncoderDuel, embedder: Embedder | None) -> dict[str, Any]:
        """The duel's status with the served version numbers beside the served names."""
        known = dict(self.versions)
        if embedder is not None:
            known.update(embedder.known_versions())
        out = duel.status()
        out["champion_version"] = known.get(duel.champion_version or "")
        out["challenger_version"] = known.get(duel.challenger_version or "")
        out["counts"] = duel.counts()
        return out

    async def publish(
        self,
        duel: EncoderDuel,
        embedder: Embedder | None,
        client: aioredis.Redis,
        keys: KeySpace,
    ) -> None:
        """Status (JSON) and decision counts (absolute, so replays are harmless) to Redis."""
        status = self.status(duel, embedder)
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(keys.encoder_status, json.dumps(status))
                pipe.hset(keys.encoder_decisions, mapping=status["counts"])
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not publish the encoder status: %s", exc)

    async def close(self) -> None:
        await self.watcher.close()
