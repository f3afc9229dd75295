"""Do images matter? The CTR model with and without encoder embeddings.

One simulated stream, one model class, the same learner code the worker runs
(:meth:`online_ctr.learner.Learner.process`: predict, record, learn), in
impression-time order; only what goes into the embedding slot differs:

* none: ids, title tokens, segment, position, hour (the model without the encoders);
* image (last layer): EfficientNet-Lite0 last-layer embeddings of the
  catalogue PNGs, projected by a 16-d PCA fitted on the catalogue (the first
  head the demo served), for comparison;
* image: the demo's head, an 8-d PCA of the multi-scale features
  (standardised, directions within items: ``fit-projection --features
  multiscale --groups``);
* image + title: plus the MiniLM title embeddings, PCA-projected likewise;
* true attributes: the simulator's hidden visual attributes (a ceiling no
  production feature may use, shown for scale).

Each row reports progressive normalised entropy and the ranking lift on
held-out requests, next to the oracle's. Embeddings are computed in-process
by the same encoder classes Triton serves (``--triton HOST:PORT`` asks a
running ``bertctr encoder serve`` instead, which must use the same projections).

With image embeddings the model is built ``with_content`` (variant ids
become residuals, see :mod:`online_ctr.models.registry`), as the worker builds it
when Triton is configured; the "ids not resid." row learns the same
features without that, for comparison. The stream is paced like ``bertctr demo``'s (5
impressions per simulated second), so for a seed the "image + title" row
is what the demo reports.

Run: ``.venv/bin/python bench/bench_embeddings.py [--events 50000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from bertctr.cli.progress import Progress
from bertctr.demo_config import DemoConfig
from bertctr.judge import Judgement, catalogue_embeddings, judge, lookup_from, true_attributes
from online_ctr.metrics import GroupMetrics
from simulator import SimConfig, Simulator
from simulator.labelled import OfflineExample, labelled_stream
from simulator.ranking import EmbeddingLookup

#: progress on stderr: a bar over each row's stream on a terminal, plain lines otherwise
SHOW = Progress(prefix="[bench_embeddings] ")


def run(
    name: str,
    sim: Simulator,
    stream: Sequence[OfflineExample],
    lookup: EmbeddingLookup | None,
    requests: int,
    seed: int,
    with_content: bool | None = None,
) -> Judgement:
    with SHOW.bar(name, len(stream), unit="examples") as bar:
        j = judge(
            sim, stream, lookup, requests, seed, with_content=with_content, progress=bar.update_to
        )
    SHOW.say(
        f"{name:<30} {j.ne:>7.4f} {j.auc:>6.4f} {j.lift:>7.3f} "
        f"{j.lift / j.oracle_lift:>8.0%} {j.events_per_s:>9.0f}",
        file=sys.stdout,
    )
    return j


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    demo = DemoConfig()
    parser.add_argument("--events", type=int, default=demo.events)
    parser.add_argument("--seed", type=int, default=demo.seed)
    parser.add_argument("--image-dim", type=int, default=demo.image_dim)
    parser.add_argument("--text-dim", type=int, default=demo.text_dim)
    parser.add_argument("--requests", type=int, default=demo.ranking_requests)
    parser.add_argument(
        "--impressions-per-s",
        type=float,
        default=demo.impressions_per_s,
        help="simulated rate (the demo's)",
    )
    args = parser.parse_args()

    sim = Simulator(SimConfig(seed=args.seed, impressions_per_s=args.impressions_per_s))
    t0 = time.perf_counter()
    # two passes over the catalogue: multi-scale image features (and titles), the last layer
    with SHOW.bar("embedding the catalogue", 2, unit="passes") as bar:
        images, titles = catalogue_embeddings(sim, args.image_dim, args.text_dim)
        bar.update()
        last_layer, _ = catalogue_embeddings(sim, 16, args.text_dim, image_features="last")
        bar.update()
    print(
        f"embedded {len(images)} images and {len(titles)} titles in "
        f"{time.perf_counter() - t0:.1f} s "
        f"(PCA {args.image_dim} multi-scale / {args.text_dim} dims)"
    )
    stream = labelled_stream(sim, args.events)
    oracle = GroupMetrics()
    for e in stream:
        oracle.update(e.true_p, e.clicked)
    print(
        f"{len(stream)} impressions (seed {args.seed}), CTR "
        f"{np.mean([e.clicked for e in stream]):.4f}, oracle NE {oracle.snapshot()['ne']:.4f}"
    )
    print(f"{'features':<30} {'NE':>7} {'AUC':>6} {'lift':>7} {'of oracle':>8} {'events/s':>9}")
    seed = args.seed + 1000
    base = run("no embeddings", sim, stream, None, args.requests, seed)
    last = lookup_from(last_layer, None)
    run("image (last layer, PCA 16)", sim, stream, last, args.requests, seed)
    img = run("image", sim, stream, lookup_from(images, None), args.requests, seed)
    both = run("image + title", sim, stream, lookup_from(images, titles), args.requests, seed)
    run(
        "image + title, ids not resid.",
        sim,
        stream,
        lookup_from(images, titles),
        args.requests,
        seed,
        with_content=False,
    )
    run(
        "true attributes (ceiling)",
        sim,
        stream,
        lookup_from(true_attributes(sim), None),
        args.requests,
        seed,
    )
    print(f"oracle lift {base.oracle_lift:.3f}")
    print(
        f"image + title vs none: NE {both.ne - base.ne:+.4f}, "
        f"lift {both.lift - base.lift:+.3f} (image only: NE {img.ne - base.ne:+.4f}, "
        f"lift {img.lift - base.lift:+.3f})"
    )


if __name__ == "__main__":
    main()
