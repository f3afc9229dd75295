"""The learner agent: labelled examples -> online model, metrics and checkpoints.

Predict-then-learn happens in :class:`online_ctr.learner.Learner` (pure); this
module only feeds it, publishes its metrics to Redis for dashboards and
``bertctr stats``, and checkpoints it together with the ``labelled`` offsets
it covers. The metrics go out through a
:class:`~streams.learner.metrics_publisher.MetricsPublisher` and checkpoints
through a :class:`~streams.learner.checkpointer.Checkpointer`. A restarted worker
loads the newest checkpoint and skips messages at or below the offsets it
records, so no example is learned twice.

Checkpoints are snapshots in a :class:`~online_ctr.store.ModelStore`, by
default the signed files of a :class:`~online_ctr.store.FileModelStore` in
``BERTCTR_CHECKPOINT_DIR``: readers outside this worker (evaluation, a
scoring API, a champion/challenger comparison) read the current model
through the same port. Each snapshot's metadata says which model it is
(``model``), how many examples it learned (``learned``) and, with an
embedder, the encoder versions it learned with (``embeddings``).

Nor is one lost: the agent is fed by :class:`streams.learner.feed.LearnerFeed`,
which reads ``labelled`` from just past the offsets of the snapshot it
resumed from, so the checkpoint is the only record of where learning stands
and a restart (or the standby that takes over) replays exactly what the
model lost. Before it saves, the agent asks its ``guard`` (the feed's lease)
whether it still may: a learner that lost its lease saves nothing more.

Learning is CPU work, so each micro-batch runs in a worker thread and the
event loop keeps heartbeating.

The join's watermark records (:class:`~schemas.events.WatermarkRecord`),
in-band on ``labelled``, advance the learner's reorder buffer when no label
comes, so a quiet stream is learned in window-close order too. Only when no
watermark has moved for ``BERTCTR_LEARNER_FLUSH_IDLE_S`` (the join of a
partition is gone) is the buffer learned anyway, unscored.

With an :class:`~encoder_server.client.embedder.Embedder` (``BERTCTR_TRITON_URL``
set), every example is learned with its image and title embeddings. While
Triton or the image store is unavailable the agent waits and retries with
backoff: the stream pauses, Kafka keeps the examples, and nothing is learned
without its embedding. An example whose image is permanently unusable
(missing, refused, undecodable) is dead-lettered with the reason instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.embedder import Embedder, ExampleEmbeddings
from encoder_server.client.errors import EncoderUnavailable, StoreUnavailable
from online_ctr.learner import Learner
from online_ctr.promotion.duel import EncoderDuel
from online_ctr.segment_quality import QualityRules
from online_ctr.store import ModelStore, SnapshotInfo
from schemas.events import WATERMARK_RECORD, LabelledImpression, WatermarkRecord
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.kafka.decode import DecodeError, decode, record_kind
from streams.learner.checkpointer import Checkpointer
from streams.learner.metrics_publisher import MetricsPublisher
from streams.learner.pending import Fresh, Mark, Pending
from streams.learner.promotion import Promotion
from streams.learner.quality import SegmentQualityFeed
from wiring.models import champion_of, fresh_learner, model_store

__all__ = ["LearnerAgent"]

log = logging.getLogger(__name__)

#: ``dead(reason, detail, message)``: dead-letters a consumed message
DeadLetterFn = Callable[[str, str, Any], Awaitable[None]]


class LearnerAgent:
    """Owns the worker's learner, its offsets and its checkpoints.

    Parameters
    ----------
    store
        Where checkpoints are saved and resumed from; by default a
        :class:`~online_ctr.store.FileModelStore` in ``settings.checkpoint_dir``
        signed with ``settings.checkpoint_key``. Tests pass a
        :class:`~online_ctr.store.MemoryModelStore`.
    guard
        Asked before every checkpoint; ``False`` (the lease is lost) raises
        :class:`~streams.learner.lease.LeaseLost` instead of saving.
    """

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        keys: KeySpace,
        embedder: Callable[[], Embedder] | None = None,
        dead: DeadLetterFn | None = None,
        store: ModelStore | None = None,
        guard: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        #: who learns, for stats and snapshots (the feed sets holder and epoch)
        self.identity: dict[str, Any] = {}
        #: built on first use, inside the worker's event loop (gRPC channels
        #: belong to the loop they are made in)
        self._make_embedder = embedder
        self.embedder: Embedder | None = None
        self.dead = dead
        #: examples dead-lettered because their embedding could not be made
        self.embedding_failures = 0
        self.client = client
        self.keys = keys
        self.store: ModelStore = store if store is not None else model_store(settings)
        #: the model variant of ``self.learner``: ``settings.model`` unless resumed otherwise
        self.model_name = settings.model
        duel_or_learner, self.offsets = self._resume()
        #: the serving model and, while a new encoder version is judged, its challenger
        self.duel = EncoderDuel.adopt(duel_or_learner, IMAGE_ENCODER)
        self.promotion = Promotion(settings)
        #: the serving model's quality per segment field value (``quality`` in the metrics)
        self.segment_quality = SegmentQualityFeed(QualityRules.from_settings(settings))
        self.segment_quality.follow(self.learner)
        self.metrics = MetricsPublisher(client, keys, settings.metrics_interval_s)
        self.checkpoints = Checkpointer(
            self.store, settings.checkpoint_interval_s, guard, self.offsets
        )
        self._last_event = time.monotonic()
        #: when the learner's watermark last moved (or a label last came)
        self._last_progress = time.monotonic()
        #: learning, metrics and checkpoints never overlap (threads + a timer)
        self._lock = asyncio.Lock()

    @property
    def checkpointed(self) -> dict[str, int]:
        """The offsets of the newest checkpoint (where a restart would resume)."""
        return self.checkpoints.checkpointed

    @property
    def learner(self) -> Learner:
        """The serving model (the duel's champion)."""
        return self.duel.champion

    def _resume(self) -> tuple[Learner | EncoderDuel, dict[str, int]]:
        """The newest usable snapshot's learner and offsets, else a fresh model.

        The store skips snapshots that do not verify and falls back to an
        older one; that one's offsets may lie below what Faust already
        committed, and the examples in between are then not relearned (the
        model misses them; none is learned twice).
        """
        try:
            snapshot = self.store.latest()
        except Exception:  # an unreadable store must not stop the worker
            log.exception("model store %r unusable; starting a fresh model", self.store)
            snapshot = None
        if snapshot is not None:
            log.info(
                "resumed learner from snapshot %s (offsets %s, metadata %s)",
                snapshot.name,
                dict(snapshot.offsets),
                dict(snapshot.metadata),
            )
            saved_as = snapshot.metadata.get("model")
            if isinstance(saved_as, str) and saved_as != self.settings.model:
                log.warning(
                    "snapshot %s is a %r model but BERTCTR_MODEL is %r; resuming it anyway",
                    snapshot.name,
                    saved_as,
                    self.settings.model,
                )
                self.model_name = saved_as
            return snapshot.learner, dict(snapshot.offsets)
        # a resumed snapshot keeps its own spec: its weights belong to it
        return fresh_learner(self.settings, with_content=bool(self.settings.triton_url)), {}

    def _learn(
        self,
        batch: Sequence[Pending],
        embeddings: dict[int, ExampleEmbeddings | None],
        challenger: dict[int, ExampleEmbeddings | None],
    ) -> None:
        """Submit labels and apply watermark records in their order in the stream.

        An example whose champion embedding failed is not learned (it is
        dead-lettered); one whose challenger embedding failed is learned by
        the challenger without an image, so both arms learn the same examples.
        """
        watermark = self.learner.watermark
        self.segment_quality.follow(self.learner)
        for i, item in enumerate(batch):
            self.offsets[item.source] = item.offset
            if isinstance(item, Mark):
                self.duel.advance(item.source, item.record.watermark)
                continue
            emb = embeddings.get(i)
            if emb is not None and emb.error:
                continue
            other = challenger.get(i)
            self.duel.submit(
                item.labelled,
                item.source,
                champion=emb,
                challenger=other if other is not None and not other.error else None,
            )
        if self.learner.watermark > watermark:
            self._last_progress = time.monotonic()
        self.segment_quality.follow(self.learner)  # a promoted challenger starts a window

    async def _embed(self, batch: Sequence[Fresh]) -> list[ExampleEmbeddings | None]:
        """Embeddings for ``batch``, waiting out transient outages (never skipping)."""
        if self._make_embedder is None:
            return [None] * len(batch)
        if self.embedder is None:
            self.embedder = self._make_embedder()
        delay = self.settings.triton_backoff_s
        while True:
            try:
                found = await self.embedder.embed(
                    [item.labelled for item in batch],
                    image_model=champion_of(self.duel).image_model,
                )
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
        for item, emb in zip(batch, embeddings, strict=True):
            if emb is not None and emb.error:
                self.embedding_failures += 1
                log.warning("no embedding for %s: %s", item.labelled.label_id, emb.error)
                if self.dead is not None:
                    await self.dead("embedding_failed", emb.error, item.message)

    async def handle_batch(self, events: Sequence[Any]) -> None:
        items: list[Pending] = []
        fresh: list[Fresh] = []
        for event in events:
            message = event.message
            tp = f"{message.topic}:{message.partition}"
            if message.offset <= self.offsets.get(tp, -1):
                continue  # already inside the checkpoint we resumed from
            try:
                if record_kind(message.headers) == WATERMARK_RECORD:
                    items.append(Mark(tp, message.offset, decode(WatermarkRecord, message.value)))
                else:
                    labelled = decode(LabelledImpression, message.value)
                    fresh.append(Fresh(tp, message.offset, labelled, message))
                    items.append(fresh[-1])
            except DecodeError:
                continue  # the counter agent dead-letters bad labelled messages
        found = await self._embed(fresh) if fresh else []
        label_positions = [i for i, item in enumerate(items) if isinstance(item, Fresh)]
        embeddings = dict(zip(label_positions, found, strict=True))
        other = await self.promotion.challenger_embeddings(
            self.duel, self.embedder, [item.labelled for item in fresh]
        )
        challenger = dict(zip(label_positions, other, strict=True)) if other else {}
        await self._dead_letter_failures(fresh, found)
        if fresh:
            self._last_event = self._last_progress = time.monotonic()
        async with self._lock:
            if items:
                await asyncio.to_thread(self._learn, items, embeddings, challenger)
                if fresh:
                    self.checkpoints.learned()
                else:
                    self.checkpoints.offsets_moved()
            await self.maybe_publish()

    async def on_timer(self) -> None:
        """Publish metrics, and checkpoint once the stream has gone quiet."""
        now = time.monotonic()
        idle = now - self._last_event >= self.settings.checkpoint_idle_s
        async with self._lock:
            if self._make_embedder is not None:
                await self.promotion.listen(self.duel)
            stopped_for = now - self._last_progress
            if stopped_for >= self.settings.learner_flush_idle_s and self.learner.buffered:
                # The join's watermark has stopped (its worker is gone): learn
                # what waits, but unscored, since its windows may be open.
                n = await asyncio.to_thread(self.duel.flush_unscored)
                log.warning(
                    "no watermark progress for %.0fs: learned %d buffered examples unscored",
                    stopped_for,
                    n,
                )
                self.checkpoints.learned()
                self._last_progress = now
            await self.maybe_publish(force=idle)

    async def maybe_publish(self, force: bool = False) -> None:
        """Metrics to Redis every ``metrics_interval_s``; checkpoint when due."""
        now = time.monotonic()
        if self.metrics.due(now, force):
            await self.metrics.publish(self.metrics_snapshot())
            if self._make_embedder is not None:
                await self.promotion.publish(self.duel, self.embedder, self.client, self.keys)
        if self.checkpoints.due(now, force):
            await self.checkpoint()

    def metrics_snapshot(self) -> dict[str, Any]:
        """The metrics document: the model's progressive metrics and where learning stands."""
        snapshot = self.learner.metrics.snapshot()
        snapshot["model"] = self.settings.model
        snapshot["offsets"] = dict(self.offsets)
        snapshot["updated_at"] = time.time()
        snapshot["embeddings"] = self.embedding_status()
        snapshot["buffered"] = self.learner.buffered
        snapshot["unscored"] = self.learner.unscored
        watermark = self.learner.watermark
        snapshot["watermark"] = watermark if watermark > float("-inf") else None
        snapshot["learner"] = dict(self.identity)
        snapshot["quality"] = self.segment_quality.snapshot()
        return snapshot

    async def close(self) -> None:
        """Release the embedder's and the announcement reader's connections."""
        await self.promotion.close()
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

    def snapshot_metadata(self) -> dict[str, Any]:
        """What a checkpoint says about its model, for readers choosing one.

        ``model`` is the variant of the learner saved (the snapshot resumed
        from may name another than ``BERTCTR_MODEL``), ``learned`` the
        examples learned, ``embeddings`` the encoder versions last seen
        served, by model name (``{}`` without an embedder or before its first
        batch).
        """
        return {
            "model": self.model_name,
            "learned": self.learner.learned,
            "embeddings": self.embedder.known_versions() if self.embedder is not None else {},
            "learner": dict(self.identity),
            "encoder": {
                "champion": self.duel.champion_version,
                "challenger": self.duel.challenger_version,
            },
        }

    async def save_if_changed(self) -> None:
        """Checkpoint now if anything moved since the last one (a clean stop)."""
        async with self._lock:
            if self.offsets != self.checkpointed:
                await self.checkpoint()

    async def checkpoint(self) -> SnapshotInfo:
        """Save the learner with the offsets it covers, if the guard still allows it.

        Called with the lock held, so every example up to ``offsets`` was
        learned before the snapshot was taken.
        """
        return await self.checkpoints.save(self.duel, self.offsets, self.snapshot_metadata())
