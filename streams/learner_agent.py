"""The learner agent: labelled examples -> online model, metrics and checkpoints.

Predict-then-learn happens in :class:`online_ctr.learner.Learner` (pure); this
module only feeds it, publishes its metrics to Redis for dashboards and
``bertctr stats``, and checkpoints it together with the ``labelled`` offsets
it covers. A restarted worker loads the newest checkpoint and skips messages
at or below the offsets it records, so no example is learned twice.

Nor is one lost: Faust commits a message's offset once every agent has
acked it, and a worker killed after that commit but before the next
checkpoint would restart past examples its model never kept. So the agent
holds one reference on every message it learns (``Message.incref``) and
acks it only when a checkpoint covering it is on disk; the committed offset
of ``labelled`` never passes the newest checkpoint, and a restart replays
exactly what the model lost (the counter agent, also on ``labelled``, is
idempotent under replays).

Learning is CPU work, so each micro-batch runs in a worker thread and the
event loop keeps heartbeating.

With an :class:`~encoder_server.embedder.Embedder` (``BERTCTR_TRITON_URL``
set), every example is learned with its image and title embeddings. While
Triton or the image store is unavailable the agent waits and retries with
backoff: the stream pauses, Kafka keeps the examples, and nothing is learned
without its embedding. An example whose image is permanently unusable
(missing, refused, undecodable) is dead-lettered with the reason instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bertctr.settings import Settings
from encoder_server.embedder import Embedder, ExampleEmbeddings
from encoder_server.errors import EncoderUnavailable, StoreUnavailable
from online_ctr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from online_ctr.learner import Learner
from online_ctr.models import make_model
from schemas.events import LabelledImpression
from streams.decode import DecodeError, decode
from streams.keys import KeySpace

log = logging.getLogger(__name__)

#: ``dead(reason, detail, message)``: dead-letters a consumed message
DeadLetterFn = Callable[[str, str, Any], Awaitable[None]]
Fresh = tuple[str, int, LabelledImpression, Any]


def model_metrics_key(keys: KeySpace) -> str:
    """Redis key of the model's progressive metrics (a JSON string)."""
    return f"{keys.prefix}model:metrics"


class LearnerAgent:
    """Owns the worker's learner, its offsets and its checkpoints."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        keys: KeySpace,
        embedder: Callable[[], Embedder] | None = None,
        dead: DeadLetterFn | None = None,
    ) -> None:
        self.settings = settings
        #: built on first use, inside the worker's event loop (gRPC channels
        #: belong to the loop they are made in)
        self._make_embedder = embedder
        self.embedder: Embedder | None = None
        self.dead = dead
        #: examples dead-lettered because their embedding could not be made
        self.embedding_failures = 0
        self.client = client
        self.keys = keys
        self.directory = Path(settings.checkpoint_dir)
        self.secret = settings.checkpoint_key.encode()
        self.learner, self.offsets = self._resume()
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        self._last_metrics = 0.0
        self._last_event = time.monotonic()
        #: events learned since the last checkpoint, acked once one covers them
        self._held: list[Any] = []
        #: learning, metrics and checkpoints never overlap (threads + a timer)
        self._lock = asyncio.Lock()

    def _resume(self) -> tuple[Learner, dict[str, int]]:
        path = latest_checkpoint(self.directory)
        if path is not None:
            try:
                learner, offsets = load_checkpoint(path, self.secret)
                log.info("resumed learner from %s (offsets %s)", path, offsets)
                return learner, dict(offsets)
            except Exception:  # a bad checkpoint must not stop the worker
                log.exception("checkpoint %s unusable; starting a fresh model", path)
        learner = Learner(
            make_model(self.settings.model, with_content=bool(self.settings.triton_url)),
            window_s=self.settings.attribution_window_s,
        )
        return learner, {}

    def _learn(
        self,
        batch: Sequence[Fresh],
        embeddings: Sequence[ExampleEmbeddings | None],
    ) -> None:
        for (tp, offset, labelled, _), emb in zip(batch, embeddings, strict=True):
            self.offsets[tp] = offset
            if emb is None:
                self.learner.submit(labelled, source=tp)
            elif not emb.error:
                self.learner.submit(
                    labelled, source=tp, image_embedding=emb.image, title_embedding=emb.title
                )

    async def _embed(self, batch: Sequence[Fresh]) -> list[ExampleEmbeddings | None]:
        """Embeddings for ``batch``, waiting out transient outages (never skipping)."""
        if self._make_embedder is None:
            return [None] * len(batch)
        if self.embedder is None:
            self.embedder = self._make_embedder()
        delay = self.settings.triton_backoff_s
        while True:
            try:
                found = await self.embedder.embed([labelled for _, _, labelled, _ in batch])
                return list(found)
            except (EncoderUnavailable, StoreUnavailable) as exc:
                log.warning(
                    "embeddings unavailable for %d examples (%s); retrying in %.1fs",
                    len(batch),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.embedding_retry_max_s)

    async def _dead_letter_failures(
        self, batch: Sequence[Fresh], embeddings: Sequence[ExampleEmbeddings | None]
    ) -> None:
        for (_, _, labelled, message), emb in zip(batch, embeddings, strict=True):
            if emb is not None and emb.error:
                self.embedding_failures += 1
                log.warning("no embedding for %s: %s", labelled.label_id, emb.error)
                if self.dead is not None:
                    await self.dead("embedding_failed", emb.error, message)

    async def handle_batch(self, events: Sequence[Any]) -> None:
        fresh: list[Fresh] = []
        learned_events = []
        for event in events:
            message = event.message
            tp = f"{message.topic}:{message.partition}"
            if message.offset <= self.offsets.get(tp, -1):
                continue  # already inside the checkpoint we resumed from
            try:
                labelled = decode(LabelledImpression, message.value)
                fresh.append((tp, message.offset, labelled, message))
                learned_events.append(event)
            except DecodeError:
                continue  # the counter agent dead-letters bad labelled messages
        embeddings = await self._embed(fresh) if fresh else []
        await self._dead_letter_failures(fresh, embeddings)
        self._last_event = time.monotonic()
        async with self._lock:
            if fresh:
                await asyncio.to_thread(self._learn, fresh, embeddings)
                self._dirty = True
                self._hold(learned_events)
            await self.maybe_publish()

    def _hold(self, events: Sequence[Any]) -> None:
        """Keep ``events`` from being committed until a checkpoint covers them."""
        for event in events:
            event.message.incref()
        self._held.extend(events)

    def _release_held(self) -> None:
        """Ack every held event: the checkpoint just written covers them all."""
        for event in self._held:
            event.ack()
        self._held.clear()

    async def on_timer(self) -> None:
        """Publish metrics, and checkpoint once the stream has gone quiet."""
        quiet_for = time.monotonic() - self._last_event
        idle = quiet_for >= self.settings.checkpoint_idle_s
        async with self._lock:
            # Flushing learns buffered positives before the negatives of their
            # time, so only a stream that has really stopped is flushed.
            if quiet_for >= self.settings.learner_flush_idle_s and self.learner.buffered:
                await asyncio.to_thread(self.learner.flush)
                self._dirty = True
            await self.maybe_publish(force=idle)

    async def maybe_publish(self, force: bool = False) -> None:
        """Metrics to Redis every ``metrics_interval_s``; checkpoint when due."""
        now = time.monotonic()
        if force or now - self._last_metrics >= self.settings.metrics_interval_s:
            self._last_metrics = now
            snapshot = self.learner.metrics.snapshot()
            snapshot["model"] = self.settings.model
            snapshot["offsets"] = dict(self.offsets)
            snapshot["updated_at"] = time.time()
            snapshot["embeddings"] = self.embedding_status()
            try:
                await self.client.set(model_metrics_key(self.keys), json.dumps(snapshot))
            except (RedisError, OSError) as exc:
                log.warning("could not publish model metrics: %s", exc)
        if self._dirty and (
            force or now - self._last_checkpoint >= self.settings.checkpoint_interval_s
        ):
            await self.checkpoint()

    async def close(self) -> None:
        """Release the embedder's connections (the worker is stopping)."""
        if self.embedder is not None:
            await self.embedder.close()
            self.embedder = None

    def embedding_status(self) -> dict[str, Any]:
        """What ``bertctr stats --json`` shows under ``model.embeddings``."""
        if self._make_embedder is None:
            return {"enabled": False}
        if self.embedder is None:
            return {"enabled": True, "failures": 0, "computed": {}, "versions": {}}
        return {
            "enabled": True,
            "failures": self.embedding_failures,
            "computed": dict(self.embedder.computed),
            "versions": self.embedder.known_versions(),
        }

    async def checkpoint(self) -> Path:
        """Save the learner with its offsets, then let Faust commit what it covers.

        Called with the lock held, so every held event was learned before
        the snapshot was taken.
        """
        self._last_checkpoint = time.monotonic()
        self._dirty = False
        path = await asyncio.to_thread(
            save_checkpoint, self.directory, self.learner, dict(self.offsets), self.secret
        )
        self._release_held()
        log.info("checkpoint %s covers %s", path, self.offsets)
        return path
