"""``bertctr finetune`` once the champion has learned the first part, minus Kafka, Redis, Triton.

The labelled topic as the join has written it by then goes through
:func:`bertctr.finetune_data.complete`, :func:`~bertctr.finetune_data.backbone_features`
and :func:`~bertctr.finetune_data.replay` (as :func:`~bertctr.finetune_data.gather`
does), then :func:`~encoder_server.training.finetune.train_head` from the PCA head
and :func:`~encoder_server.training.finetune.should_publish`; wall time and peak
RSS are measured around it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertctr.finetune_data import complete, replay
from encoder_server.training.finetune import (
    FinetuneResult,
    HeadTrainingConfig,
    should_publish,
    train_head,
)
from finetune_bench.memory import PeakRss
from finetune_bench.worker import DEFAULTS, worker_learner
from finetune_bench.world import PCA, World
from schemas.events import LabelledImpression
from simulator.labelled import OfflineExample

__all__ = ["Job", "finetune_job", "joined", "labelled_topic", "logit"]


@dataclass
class Job:
    result: FinetuneResult
    published: bool
    reason: str
    figures: dict[str, Any]


def joined(e: OfflineExample, window_s: float) -> LabelledImpression:
    """As the join writes it: a click when it comes (no delay known: at once), a
    negative when its attribution window closes."""
    ts = e.impression.ts
    return LabelledImpression.from_impression(
        e.impression,
        clicked=e.clicked,
        click_delay_s=0.0 if e.clicked else None,
        late=False,
        labelled_at=ts if e.clicked else ts + window_s,
    )


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def labelled_topic(
    learned: Sequence[OfflineExample], later: Sequence[OfflineExample], window_s: float
) -> list[LabelledImpression]:
    """The labelled topic once ``learned`` is learned.

    Every learned impression's label (the worker learns an example once its
    window has closed, so all are there) and the clicks the join has already
    sent for the next window's impressions (open windows).
    """
    newest = learned[-1].impression.ts
    topic = [joined(e, window_s) for e in learned]
    topic += [
        joined(e, window_s) for e in later if e.clicked and e.impression.ts < newest + window_s
    ]
    return topic


def finetune_job(
    world: World,
    learned: Sequence[OfflineExample],
    later: Sequence[OfflineExample],
    predictions: dict[str, float],
    seed: int,
    min_clicks: int,
) -> Job:
    """``bertctr finetune`` once ``learned`` is learned, minus Kafka, Redis and Triton."""
    window_s = DEFAULTS.attribution_window_s
    topic = labelled_topic(learned, later, window_s)
    memory = PeakRss()
    t0 = time.perf_counter()
    examples = complete(topic, window_s)
    features, rows = world.features(sorted({e.image_id for e in examples}))
    t1 = time.perf_counter()
    kept = [e for e in examples if e.image_id in rows]
    champion = world.lookup(PCA)
    data = replay(kept, [champion(e) for e in kept], features, rows, worker_learner())
    t2 = time.perf_counter()
    result = train_head(data, HeadTrainingConfig(seed=seed), init=world.head)
    t3 = time.perf_counter()
    published, reason = should_publish(result, min_clicks)
    peak = memory.peak()
    # the offsets must be what the stream's learner predicted before learning each example
    stream_offsets = np.array([logit(predictions[e.impression_id]) for e in kept])
    offsets_gap = float(np.max(np.abs(stream_offsets - data.offsets)))
    per_10k = 10_000 / max(1, data.n_examples)
    figures = {
        "published": published,
        "reason": reason,
        "topic_examples": len(topic),
        "complete_examples": len(examples),
        "examples": data.n_examples,
        "clicks": int(data.clicks.sum()),
        "images": len(rows),
        "groups": int(np.unique(data.segments).shape[0]),
        "offsets_vs_stream_max_abs": offsets_gap,
        "holdout": result.to_dict()["holdout"],
        "best_epoch": result.best_epoch,
        "train_clicks": result.splits["train"].clicks,
        "seconds": {
            "features": t1 - t0,
            "replay": t2 - t1,
            "train_head": t3 - t2,
            "total": t3 - t0,
        },
        "seconds_per_10k": (t3 - t0) * per_10k,
        "rss_before_bytes": memory.before,
        "peak_rss_bytes": peak,
        "peak_rss_increase_bytes": peak - (memory.before or 0),
        "peak_rss_is_since_job_start": memory.reset,
    }
    return Job(result, published, reason, figures)
