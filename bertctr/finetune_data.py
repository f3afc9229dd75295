"""The fine-tuning job's inputs: labelled traffic of a window, as a training set.

``bertctr finetune`` trains on what the stream already decided: the
``labelled`` topic (one record per impression, positives and negatives,
late corrections as extra positives). For each example it needs

* the image's frozen backbone features (computed here, in process, once per
  distinct image, from the same image store the workers read);
* what the serving CTR model already knows: its logit for the example, with
  the champion encoder's embeddings (the offset, so the head learns only
  what the model gets wrong);
* the audience group the model crosses content with (the learner's own
  crossed segment fields, so the head is conditioned on the same audience).

The topic is read from the start up to the end offsets seen when the job
began, and examples are kept by ``labelled_at`` inside the window: a job
never waits for traffic that has not come, and two jobs over the same
window read the same examples.

Two traps, both met on the demo before they were closed
(``docs/measurements.md``):

* **Open windows.** The join labels a clicked impression when the click
  comes and an unclicked one only when its attribution window closes, so the
  newest part of any window is all positives. Only impressions whose
  window had closed by the newest label read are kept (:func:`complete`);
  a late correction turns its impression into a click instead of adding one.
* **Offsets the model has already learned.** A snapshot taken after the
  window has learned its examples, so its logits are in-sample and the
  held-out "before" flatters it (or, if the snapshot is older than the
  traffic, it knows nothing). The offsets are therefore *progressive*: the
  window is replayed, predict-then-learn, through a copy of the newest
  snapshot written before the window began (a fresh model like the workers'
  when there is none), so each example's offset is what the model
  predicted before it had seen that example, as in the stream.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from bertctr.harness.kafka import is_control
from encoder_server.base import IMAGE_ENCODER
from encoder_server.training.finetune import TrainingSet
from online_ctr.learner import Embedding, Learner
from schemas import topics
from schemas.events import LabelledImpression
from schemas.settings import Settings
from wiring.connections import kafka_client_options
from wiring.embedding import embed_once, image_store_from_settings

__all__ = ["Window", "backbone_features", "complete", "gather", "read_window", "replay"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Label times ``[since, until)`` in epoch seconds; ``None`` is open-ended."""

    since: float | None
    until: float | None

    def holds(self, t: float) -> bool:
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)

    def to_dict(self) -> dict[str, float | None]:
        return {"since": self.since, "until": self.until}


async def read_window(settings: Settings, window: Window) -> list[LabelledImpression]:
    """Every labelled example with ``labelled_at`` in ``window`` (see the module docstring)."""
    if not settings.kafka_bootstrap:
        raise ValueError("BERTCTR_KAFKA_BOOTSTRAP must be set")
    topic = settings.topic(topics.LABELLED)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[LabelledImpression] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        left = {tp: end for tp, end in ends.items() if end > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= left.get(tp, 0):
                        continue
                    if not is_control(r.headers):
                        out.extend(_keep(r.value, window))
                if records and records[-1].offset >= ends[tp] - 1:
                    left.pop(tp, None)
    finally:
        await consumer.stop()
    log.info("read %d labelled examples in %s from %s", len(out), window.to_dict(), topic)
    return out


def complete(examples: Sequence[LabelledImpression], window_s: float) -> list[LabelledImpression]:
    """One example per impression whose attribution window has closed, in time order.

    "Closed" is judged against the newest label read (the join's view of
    time, not the wall clock); a late correction makes its impression a click.
    """
    if not examples:
        return []
    horizon = max(e.labelled_at for e in examples) - window_s
    clicked = {e.impression_id for e in examples if e.clicked}
    first: dict[str, LabelledImpression] = {}
    for e in examples:
        if e.ts <= horizon and not e.late:
            first.setdefault(e.impression_id, e)
    kept = [
        e if e.clicked or e.impression_id not in clicked else e.model_copy(update={"clicked": True})
        for e in first.values()
    ]
    return sorted(kept, key=lambda e: (e.ts, e.impression_id))


def _keep(value: bytes | None, window: Window) -> list[LabelledImpression]:
    try:
        labelled = LabelledImpression.model_validate_json(value or b"")
    except ValueError:
        return []  # the counter agent dead-letters bad labels; the job skips them
    return [labelled] if window.holds(labelled.labelled_at) else []


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def _group(learner: Learner, example: LabelledImpression, groups: dict[str, int]) -> int:
    """The audience group: the values of the segment fields the learner crosses content with."""
    crossed = learner.audience.crossed if learner.spec.auto else None
    fields = example.segment.as_dict()
    names = sorted(
        n for n in fields if learner.spec.crosses(learner.spec.embedding_cross_fields, n, crossed)
    )
    key = ",".join(f"{n}={fields[n]}" for n in names)
    return groups.setdefault(key, len(groups))


def backbone_features(
    images: Sequence[tuple[str, bytes]],
) -> tuple[np.ndarray[Any, Any], dict[str, int]]:
    """Multi-scale pooled features of each ``(image_id, png)``, and each image's row.

    Computed in process by the encoder class Triton serves. An image that
    does not decode keeps its row, all zeros (its embedding is zero, as
    when served). The pure part of :func:`gather`, shared with
    ``bench/bench_finetune.py``.
    """
    from encoder_server.serving.image_encoder import ImageEncoder

    encoder = ImageEncoder(features="multiscale")
    pooled, errors = encoder.pooled([b for _, b in images])
    rows = {image_id: k for k, (image_id, _) in enumerate(images)}
    for (image_id, _), error in zip(images, errors, strict=True):
        if error:
            log.warning("image %s unusable for training: %s", image_id, error)
    return np.asarray(pooled, dtype=np.float32), rows


async def _backbone_features(
    settings: Settings, images: dict[str, str | None]
) -> tuple[np.ndarray[Any, Any], dict[str, int]]:
    """:func:`backbone_features` of each distinct image, fetched from the image store."""
    store = image_store_from_settings(settings)
    ids = sorted(images)
    try:
        fetched = await asyncio.gather(
            *(store.fetch(i, images[i]) for i in ids), return_exceptions=True
        )
    finally:
        await store.close()
    usable = [(i, b) for i, b in zip(ids, fetched, strict=True) if isinstance(b, bytes)]
    skipped = len(ids) - len(usable)
    if skipped:
        log.warning("%d images could not be fetched; their examples are left out", skipped)
    return await asyncio.to_thread(backbone_features, usable)


def replay(
    examples: Sequence[LabelledImpression],
    embeddings: Sequence[tuple[Embedding, Embedding] | None],
    features: np.ndarray[Any, Any],
    rows: dict[str, int],
    learner: Learner,
) -> TrainingSet:
    """The training set of ``examples``, replayed through ``learner`` (the pure part of gather).

    ``embeddings`` holds each example's champion (image, title) embeddings,
    ``None`` where the champion could not embed it (left out, never
    learned); ``features`` and ``rows`` are :func:`backbone_features`' and
    every example's image must have a row. Each example is scored by
    ``learner`` before it is learned (the progressive offset), then learned
    unscored; its audience group is the learner's crossed segment fields
    at that moment. ``learner`` is changed: pass a copy.
    """
    groups: dict[str, int] = {}
    index, segments, offsets, clicks, ts = [], [], [], [], []
    for e, emb in zip(examples, embeddings, strict=True):
        if emb is None:
            continue
        index.append(rows[e.image_id])
        # progressive: scored before it is learned, as the stream scored it
        p = learner.predict_then_learn(e, emb[0], emb[1], scored=False)
        segments.append(_group(learner, e, groups))
        offsets.append(_logit(p))
        clicks.append(e.clicked)
        ts.append(e.ts)
    log.info(
        "training set: %d examples, %d images, %d audience groups",
        len(index),
        len(rows),
        len(groups),
    )
    return TrainingSet(
        features=features,
        segments=np.asarray(segments, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.float64),
        clicks=np.asarray(clicks, dtype=bool),
        ts=np.asarray(ts, dtype=np.float64),
        image_index=np.asarray(index, dtype=np.int64),
        feature_kind="multiscale",
    )


async def gather(
    settings: Settings,
    examples: Sequence[LabelledImpression],
    learner: Learner,
    champion_model: str = IMAGE_ENCODER,
) -> TrainingSet:
    """Features, offsets, audience groups and clicks of ``examples`` (see the module docstring).

    ``examples`` must be :func:`complete` (time order, one per impression);
    ``learner`` is replayed through them (it is changed: pass a copy).
    """
    t0 = time.perf_counter()
    images: dict[str, str | None] = {}
    for e in examples:
        images.setdefault(e.image_id, e.image_url)
    features, rows = await _backbone_features(settings, images)
    kept = [e for e in examples if e.image_id in rows]
    embedded = await embed_once(settings, kept, champion_model)
    data = replay(
        kept,
        [None if emb.error else (emb.image, emb.title) for emb in embedded],
        features,
        rows,
        learner,
    )
    log.info("training set gathered in %.1fs", time.perf_counter() - t0)
    return data
