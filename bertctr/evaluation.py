"""Judging a demo run against the simulator's ground truth: the I/O half.

The model's figures are its own progressive metrics (published by the
learner agent to Redis); the oracle's are the same metrics computed with the
simulator's true click probabilities on the same labelled examples. Ranking
lift (pure, :mod:`simulator.ranking`) is measured on held-out requests with
the model the worker checkpointed and the embeddings the worker learned with;
in worlds where items launch, also on the next items to launch (cold start:
no impression has shown them, only the image and title tell them apart).
Everything here is read through the workers' own :class:`Settings`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.embedder import ExampleEmbeddings
from online_ctr.learner import Learner
from online_ctr.metrics import ProgressiveMetrics
from online_ctr.store import ModelStore
from schemas.events import Impression
from schemas.keys import KeySpace
from schemas.settings import Settings
from simulator import Simulator
from simulator.ranking import EmbeddingLookup, Vector, ranking_lifts
from wiring.connections import sync_redis
from wiring.embedding import embed_once
from wiring.models import champion_of, model_store

__all__ = [
    "catalogue_lookup",
    "evaluate_run",
    "wait_for_champion",
    "wait_for_model",
    "wait_for_snapshot",
]


def wait_for_model(settings: Settings, n_labels: int, timeout_s: float) -> dict[str, Any]:
    """Block until the learner has learned ``n_labels`` examples; return its metrics."""
    client = sync_redis(settings)
    key = KeySpace(settings.redis_prefix).model_metrics
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            raw = client.get(key)
            if raw is not None:
                metrics: dict[str, Any] = json.loads(raw)
                if metrics.get("count", 0) >= n_labels:
                    return metrics
            time.sleep(0.5)
    finally:
        client.close()
    raise TimeoutError(f"the learner did not reach {n_labels} examples")


def wait_for_snapshot(store: ModelStore, n_labels: int, timeout_s: float) -> Learner:
    """Block until the newest snapshot in ``store`` has learned ``n_labels`` examples."""
    return wait_for_champion(store, n_labels, timeout_s)[0]


def wait_for_champion(store: ModelStore, n_labels: int, timeout_s: float) -> tuple[Learner, str]:
    """The serving model once it has learned ``n_labels``, and the image model it embeds with."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = store.latest()
        if snapshot is not None:
            champion = champion_of(snapshot.learner)
            if champion.learner.learned >= n_labels:
                return champion.learner, champion.image_model
        time.sleep(0.5)
    raise TimeoutError(f"no snapshot covering {n_labels} examples in {store!r}")


def catalogue_lookup(
    sim: Simulator, settings: Settings, image_model: str = IMAGE_ENCODER
) -> EmbeddingLookup | None:
    """Embeddings of every catalogue entry, the way the worker got them (None without Triton).

    Asks the same Triton and the same Redis cache the worker used, so the
    candidates are ranked with exactly the vectors the model learned from.
    """
    if not settings.triton_url:
        return None
    impressions = [
        Impression(
            event_id=f"catalogue-{e.image_id}",
            impression_id=f"catalogue-{e.image_id}",
            ts=0.0,
            item_id=e.item_id,
            image_id=e.image_id,
            variant=e.variant,
            title=e.title,
            position=0,
            segment={"device": "any", "geo": "any"},
        )
        for e in sim.catalogue
    ]
    found = asyncio.run(_embed_catalogue(settings, impressions, image_model))
    images = {imp.image_id: f.image for imp, f in zip(impressions, found, strict=True)}
    titles = {imp.title: f.title for imp, f in zip(impressions, found, strict=True)}

    def lookup(imp: Impression) -> tuple[Vector | None, Vector | None]:
        return images.get(imp.image_id), titles.get(imp.title)

    return lookup


async def _embed_catalogue(
    settings: Settings, impressions: list[Impression], image_model: str
) -> list[ExampleEmbeddings]:
    found = await embed_once(settings, impressions, image_model)
    failed = [f.error for f in found if f.error]
    if failed:
        raise RuntimeError(f"{len(failed)} catalogue entries have no embedding: {failed[:3]}")
    return found


def evaluate_run(
    sim: Simulator,
    labels: Sequence[dict[str, Any]],
    settings: Settings,
    *,
    ranking_requests: int,
    seed: int,
    timeout_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The model's metrics and ranking lift beside the oracle's, for ``labels``."""
    model = wait_for_model(settings, len(labels), timeout_s=timeout_s)
    store = model_store(settings)
    learner, image_model = wait_for_champion(store, len(labels), timeout_s=120)
    oracle = ProgressiveMetrics()
    for label in labels:
        oracle.update(sim.true_p[label["impression_id"]], bool(label["clicked"]))
    o = oracle.snapshot()
    progress("ranking held-out requests")
    lookup = catalogue_lookup(sim, settings, image_model)
    lift, oracle_lift = ranking_lifts(sim, learner, ranking_requests, seed + 1000, lookup)
    cold: tuple[float | None, float | None] = (None, None)
    if sim.shelf is not None:  # a world with launches: rank the next items to launch too
        cold = ranking_lifts(sim, learner, ranking_requests, seed + 2000, lookup, "cold")
    return {
        "logloss": model["logloss"],
        "ne": model["ne"],
        "oracle_logloss": o["logloss"],
        "oracle_ne": o["ne"],
        "auc": model["auc"],
        "oracle_auc": o["auc"],
        "calibration": model["calibration"],
        "ranking_ctr_lift": lift,
        "oracle_ranking_ctr_lift": oracle_lift,
        "cold_start_ranking_ctr_lift": cold[0],
        "oracle_cold_start_ranking_ctr_lift": cold[1],
        "model": model.get("model"),
        "embeddings": model.get("embeddings", {"enabled": False}),
    }
