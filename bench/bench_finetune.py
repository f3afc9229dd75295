"""The whole encoder loop in process: fine-tune the image head on clicks, let the stream judge.

One seed of the demo's stream (``bertctr demo``'s world: ``SimConfig(seed,
impressions_per_s=5.0)``, 50,000 impressions), with the encoder classes
Triton serves but no broker and no Triton:

1. **Champion.** The catalogue is rendered and embedded as the demo embeds
   it (:func:`bertctr.judge.catalogue_embeddings`: an 8-d PCA head on the
   multi-scale features, fitted within items, and 8-d PCA title
   embeddings); the worker's learner (:class:`online_ctr.learner.Learner`,
   ``with_content``, the settings' crosses) learns the first
   ``--finetune-at`` (0.4) of the labelled stream progressively.
2. **The job** (``bertctr finetune`` without its I/O): the labelled topic as
   the join has written it by then (each negative labelled when its window
   closes; the clicks of the next window's impressions already there) goes
   through :func:`bertctr.finetune_data.complete`, then
   :func:`~bertctr.finetune_data.backbone_features` (multi-scale features of
   each distinct image) and :func:`~bertctr.finetune_data.replay`
   (progressive offsets through a fresh worker learner, audience groups
   from its crossed fields), as :func:`~bertctr.finetune_data.gather` does;
   then :func:`~encoder_server.training.finetune.train_head` (from the PCA head, the
   demo's seed) and :func:`~encoder_server.training.finetune.should_publish` (the
   demo's 100 clicks). Its wall time (also per 10k training examples) and
   the process's peak RSS while it runs are measured; the RSS is absolute
   (it includes what the bench holds) and is also shown as the increase
   over the RSS at the job's start, mostly the backbone's, not per example.
3. **The duel.** The rest of the stream goes through an
   :class:`~online_ctr.promotion.duel.EncoderDuel` (the settings' alpha, margin and
   example bounds): champion on the PCA embeddings, challenger on the new
   head's (embedded by ``ImageEncoder.with_head``), each arm submitted the
   embeddings of its own version as the worker's promotion does. The
   duel runs whether or not the gate published (the "forced" figures);
   the "loop" column is the duel when published, else the champion alone.
   It starts at the fine-tuning point itself: in the demo the job's own
   minutes pass first, learned by the champion alone.
4. **Baselines and controls.** No fine-tuning (the champion alone on the
   PCA head), the hidden true attributes (a ceiling, as
   ``bench_embeddings``' last row), and three challengers that must not be
   promoted: the PCA embeddings shuffled between images, a zero head, and
   the PCA head itself; and one that should be: the PCA head's first half
   followed by the hidden true attributes (``attributes``), to show what the
   duel does with a version known to carry more. (The ceiling learns
   without title embeddings, as there; every other arm has the demo's.)

Figures, on the traffic after the fine-tuning point: progressive NE of what
served (the champion of the moment, so a promotion switches scorer) and its
gap to the oracle's NE on the same examples; the final champion's own
progressive NE; the final champion's ranking lift on held-out requests (with
its own embeddings) as a share of the oracle's. The last line is one JSON
object with everything.

``--photos`` draws the same catalogue on real photographs (scikit-learn's
two sample images, cropped per item and edited per variant by the hidden
attributes: zoom, exposure, colour cast, blur, a text banner; see
:func:`finetune_bench.photos.photo_catalogue`), so no head has seen the simulator's own drawings:
the champion is the PCA head of the photographs' features.

Run: ``.venv/bin/python bench/bench_finetune.py [--seeds 7 8 9 10 11 12]
[--events 50000] [--visual-taste 1.0] [--calibration 1000] [--photos] [--quick]``
(``--calibration 0``: every challenger forgets the champion's image weights
instead of having them carried over, the baseline of the weight map)

This script is the story of one seed (:func:`run_seed`) and the command line;
its pieces, one concept a module, are the ``finetune_bench`` package beside it
(the world, the photographs, the job, the arms, the report).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from finetune_bench.arms import Arm, alone, duel, learn
from finetune_bench.job import finetune_job
from finetune_bench.report import print_seed, print_summary, summarise
from finetune_bench.worker import worker_learner
from finetune_bench.world import CONTROLS, FINETUNED, PCA, POSITIVE, World, build_world

from bertctr.cli.progress import Progress
from bertctr.demo_config import DemoConfig
from bertctr.judge import lookup_from, true_attributes
from online_ctr.learner import Learner
from online_ctr.metrics import GroupMetrics
from online_ctr.promotion.duel import CALIBRATION
from simulator.config import WORLDS
from simulator.labelled import OfflineExample
from simulator.ranking import ranking_lifts
from simulator.traffic import Cohort

#: progress on stderr: a bar over each seed's steps on a terminal, plain lines otherwise
SHOW = Progress(prefix="[bench_finetune] ")
#: the steps of one seed, as the bar names them
STEPS = ("world", "champion", "job", "arms", "ranking")


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    t_seed = time.perf_counter()
    steps = SHOW.bar(f"seed {seed}", len(STEPS), unit="steps")
    steps.set_postfix(step=STEPS[0])
    world = build_world(seed, args.events, args)
    stream = world.stream
    cut = int(args.finetune_at * len(stream))
    learned, rest = stream[:cut], stream[cut:]
    oracle = GroupMetrics()
    for e in rest:
        oracle.update(e.true_p, e.clicked)
    oracle_ne = float(oracle.snapshot()["ne"])
    SHOW.say(
        f"\nseed {seed}: {len(stream)} impressions, CTR "
        f"{np.mean([e.clicked for e in stream]):.4f}, fine-tuning after {cut} "
        f"({sum(e.clicked for e in learned)} clicks); oracle NE after {oracle_ne:.4f}",
        file=sys.stdout,
    )

    def step(name: str) -> None:  # the previous step is done, ``name`` starts
        steps.set_postfix(step=name)
        steps.update()

    # 1. the champion learns the first part, as the worker does
    step(STEPS[1])
    champion = worker_learner()
    predictions = learn(champion, learned, world.lookup(PCA))
    # 2. the job, and the new version embedded as Triton would serve it
    step(STEPS[2])
    job = finetune_job(world, learned, rest, predictions, seed, args.min_clicks)
    world.add_head(FINETUNED, job.result.projection)
    # 3. and 4. the rest of the stream, every way
    step(STEPS[3])
    arms, controls = run_arms(world, champion, learned, rest, job.published, args.calibration)
    step(STEPS[4])
    by_cohort = ranking(world, arms, job.published, args.requests, seed + 1000)
    steps.set_postfix(step="done")
    steps.update()
    steps.close()
    lifts, oracle_lift = by_cohort["all"] if "all" in by_cohort else by_cohort["warm"]
    cold = by_cohort.get("cold")

    def figures(name: str, arm: Arm) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ne": arm.served.ne,
            "ne_gap": arm.served.ne - oracle_ne,
            "final_champion_ne": arm.final.ne,
            "final_champion": arm.champion_version,
        }
        if name in lifts:
            out["lift"] = lifts[name]
            out["lift_share"] = lifts[name] / oracle_lift
        if cold is not None and name in cold[0]:
            out["cold_lift"] = cold[0][name]
            out["cold_lift_share"] = cold[0][name] / cold[1]
        if arm.decision is not None:
            out["duel"] = arm.decision
        return out

    result: dict[str, Any] = {
        "seed": seed,
        "impressions": len(stream),
        "finetune_at_example": cut,
        "ctr": float(np.mean([e.clicked for e in stream])),
        "oracle_ne_after": oracle_ne,
        "oracle_lift": oracle_lift,
        "oracle_cold_lift": cold[1] if cold is not None else None,
        "world": args.world,
        "arms": {name: figures(name, arm) for name, arm in arms.items()},
        "controls": {name: figures(name, arm) for name, arm in controls.items()},
        "job": job.figures,
        "seconds": time.perf_counter() - t_seed,
    }
    print_seed(result)
    return result


def run_arms(
    world: World,
    champion: Learner,
    learned: Sequence[OfflineExample],
    rest: Sequence[OfflineExample],
    published: bool,
    calibration: int,
) -> tuple[dict[str, Arm], dict[str, Arm]]:
    """The traffic after the fine-tuning point, every way: the arms, then the controls.

    Each arm starts from its own copy of ``champion``; the "loop" is the
    forced duel when the job published, else the champion alone; the
    ceiling learns ``learned`` on the hidden true attributes (no titles).
    """
    pca = world.lookup(PCA)
    arms: dict[str, Arm] = {}
    arms["no_finetune"] = alone(copy.deepcopy(champion), rest, pca, PCA)
    arms["forced"] = duel(copy.deepcopy(champion), rest, world, FINETUNED, calibration)
    arms["loop"] = arms["forced"] if published else arms["no_finetune"]
    truth = worker_learner()
    truth_lookup = lookup_from(true_attributes(world.sim), None)
    learn(truth, learned, truth_lookup)
    arms["true_attributes"] = alone(truth, rest, truth_lookup, "true attributes")
    controls = {
        c: duel(copy.deepcopy(champion), rest, world, c, calibration) for c in (*CONTROLS, POSITIVE)
    }
    arms[POSITIVE] = controls[POSITIVE]
    return arms, controls


#: the arms whose final champion is ranked on held-out requests
RANKED = ("no_finetune", "forced", "true_attributes", POSITIVE)


def ranking(
    world: World, arms: dict[str, Arm], published: bool, requests: int, rank_seed: int
) -> dict[str, tuple[dict[str, float], float]]:
    """By cohort: each ranked arm's final-champion lift on held-out requests, and the oracle's.

    The small world asks about every item (``all``); the catalogue world
    about live items drawn like traffic (``warm``) and about the next items
    to launch, which no model has seen (``cold``).
    """
    cohorts: tuple[Cohort, ...] = ("all",) if world.sim.shelf is None else ("warm", "cold")
    out: dict[str, tuple[dict[str, float], float]] = {}
    for cohort in cohorts:
        ranked = {
            name: ranking_lifts(
                world.sim, arms[name].champion, requests, rank_seed, arms[name].lookup, cohort
            )
            for name in RANKED
        }
        lifts = {name: value for name, (value, _) in ranked.items()}
        lifts["loop"] = lifts["forced"] if published else lifts["no_finetune"]
        out[cohort] = (lifts, ranked["no_finetune"][1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    demo = DemoConfig()
    parser.add_argument("--seeds", type=int, nargs="+", default=[demo.seed])
    parser.add_argument(
        "--world",
        choices=sorted(WORLDS),
        default="catalogue",
        help="catalogue: 2,000 items x 4 variants, Zipf popularity, launches and cold "
        "start (the default); small: the demo's 40-item world",
    )
    parser.add_argument(
        "--items", type=int, default=None, help="items of the catalogue world (default 2,000)"
    )
    parser.add_argument(
        "--catalogue-seed",
        type=int,
        default=7,
        help="the catalogue world's shop, one for every seed (its features are cached)",
    )
    parser.add_argument(
        "--events", type=int, default=None, help="impressions (default 200k; small world 50k)"
    )
    parser.add_argument("--finetune-at", type=float, default=demo.finetune_at)
    parser.add_argument("--min-clicks", type=int, default=demo.finetune_min_clicks)
    parser.add_argument("--visual-taste", type=float, default=1.0)
    parser.add_argument("--image-dim", type=int, default=demo.image_dim)
    parser.add_argument("--text-dim", type=int, default=demo.text_dim)
    parser.add_argument("--requests", type=int, default=demo.ranking_requests)
    parser.add_argument("--impressions-per-s", type=float, default=demo.impressions_per_s)
    parser.add_argument(
        "--calibration",
        type=int,
        default=CALIBRATION,
        help="examples that fit the weight map before each duel; 0: the challenger "
        "forgets the champion's image weights instead (the baseline)",
    )
    parser.add_argument(
        "--photos",
        action="store_true",
        help="draw the catalogue on real photographs (scikit-learn's two sample images) "
        "instead of the simulator's renderer; the champion is their PCA head",
    )
    parser.add_argument(
        "--quick", action="store_true", help="10k events, one seed (for development)"
    )
    args = parser.parse_args()
    if args.items is None:
        args.items = int(WORLDS[args.world].get("n_items", 40))
    if args.events is None:
        args.events = demo.events if args.world == "small" else 200_000
    if args.quick:
        args.events, args.seeds = 10_000, args.seeds[:1]
    started = time.perf_counter()
    results = [run_seed(seed, args) for seed in args.seeds]
    summary = summarise(results, args.visual_taste)
    print_summary(summary)
    config = {k: v for k, v in vars(args).items()}
    print(
        json.dumps(
            {
                "config": config,
                "summary": summary,
                "seeds": results,
                "seconds": time.perf_counter() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
