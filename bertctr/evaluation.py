"""Judging a demo run against the simulator's ground truth.

The model's figures are its own progressive metrics (published by the
learner agent to Redis); the oracle's are the same metrics computed with the
simulator's true click probabilities on the same labelled examples. Ranking
lift is measured on held-out requests: the CTR, by true probabilities, of the
variant each ranker puts first, over the CTR of a random variant.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import redis
import redis.asyncio as aioredis

from online_ctr.checkpoint import latest_checkpoint, load_checkpoint
from online_ctr.learner import Learner
from online_ctr.metrics import ProgressiveMetrics
from schemas.events import Impression

Vector = tuple[float, ...]
#: an impression's (image, title) embeddings, as the learner saw them
EmbeddingLookup = Callable[[Impression], tuple[Vector | None, Vector | None]]

if TYPE_CHECKING:
    from bertctr.demo import DemoConfig, LabelLog
    from encoder_server.embedder import ExampleEmbeddings
    from simulator import Simulator


def wait_for_model(env: dict[str, str], n_labels: int, timeout_s: float) -> dict[str, Any]:
    """Block until the learner has learned ``n_labels`` examples; return its metrics."""
    client = redis.Redis.from_url(env["BERTCTR_REDIS_URL"])
    key = f"{env['BERTCTR_REDIS_PREFIX']}model:metrics"
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


def wait_for_checkpoint(directory: Path, key: bytes, n_labels: int, timeout_s: float) -> Learner:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        path = latest_checkpoint(directory)
        if path is not None:
            learner, _ = load_checkpoint(path, key)
            if isinstance(learner, Learner) and learner.learned >= n_labels:
                return learner
        time.sleep(0.5)
    raise TimeoutError(f"no checkpoint covering {n_labels} examples in {directory}")


def ranking_lifts(
    sim: Simulator,
    learner: Learner,
    n: int,
    seed: int,
    embeddings: EmbeddingLookup | None = None,
) -> tuple[float, float]:
    """(model lift, oracle lift) of top-1 variant choice over a random variant.

    ``embeddings`` gives each candidate the image and title embeddings the
    model learned with (``None``: it learned without).
    """
    chosen, best, random_ = [], [], []
    for req in sim.ranking_requests(n, seed):
        truth = [
            sim.true_ctr(req.segment, req.item_id, v, req.position, req.ts) for v in req.candidates
        ]
        scores = []
        for v in req.candidates:
            imp = sim.make_impression(req, v)
            image, title = embeddings(imp) if embeddings is not None else (None, None)
            scores.append(learner.predict(imp, image, title))
        chosen.append(truth[int(np.argmax(scores))])
        best.append(max(truth))
        random_.append(float(np.mean(truth)))
    base = float(np.mean(random_))
    return float(np.mean(chosen)) / base - 1.0, float(np.mean(best)) / base - 1.0


def catalogue_lookup(sim: Simulator, env: dict[str, str]) -> EmbeddingLookup | None:
    """Embeddings of every catalogue entry, the way the worker got them (None without Triton).

    Asks the same Triton and the same Redis cache the worker used, so the
    candidates are ranked with exactly the vectors the model learned from.
    """
    if not env.get("BERTCTR_TRITON_URL"):
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
    found = asyncio.run(_embed_catalogue(env, impressions))
    images = {imp.image_id: f.image for imp, f in zip(impressions, found, strict=True)}
    titles = {imp.title: f.title for imp, f in zip(impressions, found, strict=True)}

    def lookup(imp: Impression) -> tuple[Vector | None, Vector | None]:
        return images.get(imp.image_id), titles.get(imp.title)

    return lookup


async def _embed_catalogue(
    env: dict[str, str], impressions: list[Impression]
) -> list[ExampleEmbeddings]:
    from encoder_server.cache import EmbeddingCache
    from encoder_server.client import TritonEmbeddingClient
    from encoder_server.embedder import Embedder
    from encoder_server.image_store import LocalImageStore

    client = TritonEmbeddingClient(env["BERTCTR_TRITON_URL"])
    cache = aioredis.Redis.from_url(env["BERTCTR_REDIS_URL"])
    store = LocalImageStore(env["BERTCTR_IMAGE_DIR"], max_bytes=10 * 1024 * 1024)
    try:
        embedder = Embedder(client, store, EmbeddingCache(cache, env["BERTCTR_REDIS_PREFIX"]))
        found = await embedder.embed(impressions)
    finally:
        await client.close()
        await cache.aclose()
    failed = [f.error for f in found if f.error]
    if failed:
        raise RuntimeError(f"{len(failed)} catalogue entries have no embedding: {failed[:3]}")
    return found


def evaluate_run(
    sim: Simulator,
    outputs: LabelLog,
    env: dict[str, str],
    n_labels: int,
    cfg: DemoConfig,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    model = wait_for_model(env, n_labels, timeout_s=cfg.timeout_s)
    key = env.get("BERTCTR_CHECKPOINT_KEY", "bertctr-dev-checkpoint-key").encode()
    learner = wait_for_checkpoint(Path(env["BERTCTR_CHECKPOINT_DIR"]), key, n_labels, timeout_s=120)
    oracle = ProgressiveMetrics()
    for label in outputs.labels:
        oracle.update(sim.true_p[label["impression_id"]], bool(label["clicked"]))
    o = oracle.snapshot()
    progress("ranking held-out requests")
    lookup = catalogue_lookup(sim, env)
    lift, oracle_lift = ranking_lifts(sim, learner, cfg.ranking_requests, cfg.seed + 1000, lookup)
    return {
        "impressions": outputs.base_labels,
        "clicks": sum(1 for m in outputs.labels if m["clicked"]),
        "late_clicks": sum(1 for m in outputs.labels if m["late"]),
        "labelled": len(outputs.labels),
        "dead_lettered": len(outputs.dead),
        "logloss": model["logloss"],
        "ne": model["ne"],
        "oracle_logloss": o["logloss"],
        "oracle_ne": o["ne"],
        "auc": model["auc"],
        "oracle_auc": o["auc"],
        "calibration": model["calibration"],
        "ranking_ctr_lift": lift,
        "oracle_ranking_ctr_lift": oracle_lift,
        "model": model.get("model"),
        "embeddings": model.get("embeddings", {"enabled": False}),
    }
