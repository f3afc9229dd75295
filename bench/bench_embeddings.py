"""Do images matter? The CTR model with and without encoder embeddings.

One simulated stream, one model class, the same learner code the worker runs
(:meth:`online_ctr.learner.Learner.process`: predict, record, learn), in
impression-time order; only what goes into the embedding slot differs:

* none: ids, title tokens, segment, position, hour (the model without the encoders);
* image: EfficientNet-Lite0 embeddings of the catalogue PNGs, projected by a
  PCA fitted on the catalogue's pooled features (the version-1 projection
  head ``bertctr encoder fit-projection`` writes);
* image + title: plus the MiniLM title embeddings, PCA-projected likewise;
* true attributes: the simulator's hidden visual attributes (a ceiling no
  production feature may use, shown for scale).

Each row reports progressive normalised entropy and the ranking lift on
held-out requests, next to the oracle's. Embeddings are computed in-process
by the same encoder classes Triton serves (``--triton HOST:PORT`` asks a
running ``bertctr encoder serve`` instead, which must use the same projections).

Run: ``.venv/bin/python bench/bench_embeddings.py [--events 50000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bertctr.evaluation import EmbeddingLookup, Vector, ranking_lifts
from encoder_server.image_encoder import ImageEncoder
from encoder_server.projection import Projection, fit_pca
from encoder_server.text_encoder import TextEncoder
from online_ctr.learner import Learner
from online_ctr.metrics import GroupMetrics
from online_ctr.models import make_model
from schemas.events import Impression
from simulator import SimConfig, Simulator
from simulator.offline import OfflineExample, labelled_stream


def catalogue_embeddings(
    sim: Simulator, image_dim: int, text_dim: int
) -> tuple[dict[str, Vector], dict[str, Vector]]:
    """Image and title embeddings of the whole catalogue, with PCA heads fitted on it."""
    with tempfile.TemporaryDirectory() as tmp:
        sim.render_catalogue(Path(tmp))
        ids = [e.image_id for e in sim.catalogue]
        pngs = [(Path(tmp) / f"{i}.png").read_bytes() for i in ids]
    encoder = ImageEncoder()
    pooled, errors = encoder.pooled(pngs)
    assert not any(errors), errors
    image_encoder = ImageEncoder(projection=fit_pca(pooled, image_dim))
    images = image_encoder.encode(pngs)
    titles = sorted({e.title for e in sim.catalogue})
    raw = TextEncoder(projection=Projection.identity(384)).encode([t.encode() for t in titles])
    text_encoder = TextEncoder(projection=fit_pca(raw.embeddings, text_dim))
    title_vecs = text_encoder.encode([t.encode() for t in titles])
    return (
        {i: tuple(map(float, v)) for i, v in zip(ids, images.embeddings, strict=True)},
        {t: tuple(map(float, v)) for t, v in zip(titles, title_vecs.embeddings, strict=True)},
    )


def true_attributes(sim: Simulator) -> dict[str, Vector]:
    """The hidden visual attributes, centred, by image id (a ceiling, never a feature)."""
    return {
        e.image_id: tuple(float(v) - 0.5 for _, v in sorted(e.numeric().items()))
        for e in sim.catalogue
    }


def run(
    name: str,
    sim: Simulator,
    stream: Sequence[OfflineExample],
    lookup: EmbeddingLookup | None,
    requests: int,
    seed: int,
) -> dict[str, float]:
    learner = Learner(make_model())
    ps = []
    t0 = time.perf_counter()
    for e in stream:
        image, title = lookup(e.impression) if lookup is not None else (None, None)
        ps.append(learner.process(e.labelled(), image, title))
    rate = len(stream) / (time.perf_counter() - t0)
    lift, oracle_lift = ranking_lifts(sim, learner, requests, seed, lookup)
    group = GroupMetrics()
    for p, e in zip(ps, stream, strict=True):
        group.update(p, e.clicked)
    m = group.snapshot()
    print(
        f"{name:<26} {m['ne']:>7.4f} {m['auc']:>6.4f} {lift:>7.3f} "
        f"{lift / oracle_lift:>8.0%} {rate:>9.0f}",
        flush=True,
    )
    return {"ne": m["ne"], "lift": lift, "oracle_lift": oracle_lift}


def lookup_from(
    images: dict[str, Vector] | None, titles: dict[str, Vector] | None
) -> Callable[[Impression], tuple[Vector | None, Vector | None]]:
    def lookup(imp: Impression) -> tuple[Vector | None, Vector | None]:
        image = images[imp.image_id] if images is not None else None
        title = titles.get(imp.title) if titles is not None else None
        return image, title

    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--image-dim", type=int, default=16)
    parser.add_argument("--text-dim", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    sim = Simulator(SimConfig(seed=args.seed))
    t0 = time.perf_counter()
    images, titles = catalogue_embeddings(sim, args.image_dim, args.text_dim)
    print(
        f"embedded {len(images)} images and {len(titles)} titles in "
        f"{time.perf_counter() - t0:.1f} s (PCA {args.image_dim} / {args.text_dim} dims)"
    )
    stream = labelled_stream(sim, args.events)
    oracle = GroupMetrics()
    for e in stream:
        oracle.update(e.true_p, e.clicked)
    print(
        f"{len(stream)} impressions (seed {args.seed}), CTR "
        f"{np.mean([e.clicked for e in stream]):.4f}, oracle NE {oracle.snapshot()['ne']:.4f}"
    )
    print(f"{'features':<26} {'NE':>7} {'AUC':>6} {'lift':>7} {'of oracle':>8} {'events/s':>9}")
    seed = args.seed + 1000
    base = run("no embeddings", sim, stream, None, args.requests, seed)
    img = run("image", sim, stream, lookup_from(images, None), args.requests, seed)
    both = run("image + title", sim, stream, lookup_from(images, titles), args.requests, seed)
    run(
        "true attributes (ceiling)",
        sim,
        stream,
        lookup_from(true_attributes(sim), None),
        args.requests,
        seed,
    )
    print(f"oracle lift {base['oracle_lift']:.3f}")
    print(
        f"image + title vs none: NE {both['ne'] - base['ne']:+.4f}, "
        f"lift {both['lift'] - base['lift']:+.3f} (image only: NE {img['ne'] - base['ne']:+.4f}, "
        f"lift {img['lift'] - base['lift']:+.3f})"
    )


if __name__ == "__main__":
    main()
