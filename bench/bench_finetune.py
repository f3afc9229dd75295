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
   :class:`~online_ctr.duel.EncoderDuel` (the settings' alpha, margin and
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
:func:`photo_catalogue`), so no head has seen the simulator's own drawings:
the champion is the PCA head of the photographs' features.

Run: ``.venv/bin/python bench/bench_finetune.py [--seeds 7 8 9 10 11 12]
[--events 50000] [--visual-taste 1.0] [--calibration 1000] [--photos] [--quick]``
(``--calibration 0``: every challenger forgets the champion's image weights
instead of having them carried over, the baseline of the weight map)
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import resource
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertctr.demo_config import DemoConfig
from bertctr.finetune_data import backbone_features, complete, replay
from bertctr.judge import catalogue_embeddings, lookup_from, true_attributes
from encoder_server.projection import Projection, fit_pca
from encoder_server.serving.image_encoder import ImageEncoder
from encoder_server.training.finetune import (
    FinetuneResult,
    HeadTrainingConfig,
    should_publish,
    train_head,
)
from online_ctr.duel import CALIBRATION, EncoderDuel
from online_ctr.features import FeatureSpec
from online_ctr.learner import Learner
from online_ctr.metrics import GroupMetrics, entropy
from online_ctr.models import make_model
from schemas.events import LabelledImpression
from schemas.settings import Settings
from simulator import SimConfig, Simulator
from simulator.catalogue import COLOURS
from simulator.labelled import OfflineExample, labelled_stream
from simulator.ranking import EmbeddingLookup, Vector, ranking_lifts

#: the settings a worker and the job run with when nothing is configured
DEFAULTS = Settings.model_construct()
PCA = "pca"
FINETUNED = "finetuned"
#: the challengers that must never be promoted
CONTROLS = ("shuffled", "zero", "identical")
#: a challenger that should be: the PCA head's first half, then the hidden true
#: attributes (all within the crossed dimensions), so the duel itself is tested
#: on a version known to carry more than the champion's
POSITIVE = "attributes"


# -- small pieces -------------------------------------------------------------------


def worker_learner() -> Learner:
    """A model as a worker starts one with the encoders on (and the job's fresh replay)."""
    return Learner(
        make_model(DEFAULTS.model, with_content=True),
        window_s=DEFAULTS.attribution_window_s,
        spec=FeatureSpec.from_setting(
            DEFAULTS.content_cross_fields, DEFAULTS.content_cross_max_values
        ),
    )


@dataclass(frozen=True)
class Tally:
    """The additive part of progressive metrics, so a stretch of traffic is a difference."""

    count: float = 0.0
    positives: float = 0.0
    logloss: float = 0.0

    @classmethod
    def of(cls, learner: Learner) -> Tally:
        g = learner.metrics.overall
        return cls(g.count, g.positives, g.sum_logloss)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.count + other.count,
            self.positives + other.positives,
            self.logloss + other.logloss,
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.count - other.count,
            self.positives - other.positives,
            self.logloss - other.logloss,
        )

    @property
    def ne(self) -> float:
        ctr = self.positives / self.count
        return self.logloss / self.count / entropy(ctr)


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


class PeakRss:
    """Peak resident memory of this process over a stretch of work.

    Linux: ``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``);
    elsewhere it is ``getrusage``'s lifetime peak.
    """

    def __init__(self) -> None:
        self.before = _status_bytes("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False

    def peak(self) -> int:
        hwm = _status_bytes("VmHWM") if self.reset else None
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# -- the world ------------------------------------------------------------------------


@dataclass
class World:
    """One seed: the stream, the catalogue's pixels and features, the champion's embeddings."""

    sim: Simulator
    stream: list[OfflineExample]
    pngs: dict[str, bytes]
    encoder: ImageEncoder  # the PCA head's, whose backbone every version shares
    head: Projection
    images: dict[str, dict[str, Vector]]  # by version name: image id -> embedding
    titles: dict[str, Vector]

    def lookup(self, version: str) -> EmbeddingLookup:
        return lookup_from(self.images[version], self.titles)


def build_world(seed: int, events: int, args: argparse.Namespace) -> World:
    config = SimConfig(
        seed=seed, impressions_per_s=args.impressions_per_s, visual_taste=args.visual_taste
    )
    sim = Simulator(config)
    # the demo's embeddings, exactly (and the titles); the head is refitted here,
    # the same way, to start training from it and to encode the other versions
    demo_images, titles = catalogue_embeddings(sim, args.image_dim, args.text_dim)
    ids = [e.image_id for e in sim.catalogue]
    if args.photos:
        pngs = photo_catalogue(sim, seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sim.render_catalogue(Path(tmp))
            pngs = {i: (Path(tmp) / f"{i}.png").read_bytes() for i in ids}
    base = ImageEncoder(features="multiscale")
    pooled, errors = base.pooled([pngs[i] for i in ids])
    if any(errors):
        raise RuntimeError(f"catalogue images failed to embed: {errors}")
    head = fit_pca(
        pooled,
        args.image_dim,
        groups=[e.item_id for e in sim.catalogue],
        feature_kind="multiscale",
    )
    encoder = base.with_head(head)
    pca = dict(zip(ids, map(_vector, head.apply(pooled)), strict=True))
    if args.photos:  # the champion is the PCA head of the photographs, fitted the demo's way
        demo_images = pca
    gap = max(abs(a - b) for i in ids for a, b in zip(pca[i], demo_images[i], strict=True))
    if gap > 1e-4:
        raise RuntimeError(f"the refitted PCA head is not the demo's (differs by {gap:.2g})")
    truth = true_attributes(sim)
    half = args.image_dim // 2
    attributes = {i: demo_images[i][:half] + truth[i][: args.image_dim - half] for i in ids}
    rng = np.random.default_rng(seed)
    shuffled = dict(zip(ids, (demo_images[ids[k]] for k in rng.permutation(len(ids))), strict=True))
    zero = (0.0,) * args.image_dim
    images = {
        PCA: demo_images,
        "identical": demo_images,
        "shuffled": shuffled,
        "zero": {i: zero for i in ids},
        POSITIVE: attributes,
    }
    stream = labelled_stream(sim, events)
    return World(sim, stream, pngs, encoder, head, images, titles)


#: scikit-learn ships two real photographs in its wheel (nothing is downloaded)
PHOTOS = ("china.jpg", "flower.jpg")
BANNER = "SALE -30%"


def photo_catalogue(sim: Simulator, seed: int) -> dict[str, bytes]:
    """The catalogue drawn on real photographs instead of the simulator's renderer.

    Each item is a seeded square crop of one of scikit-learn's two sample
    photographs; each variant edits it the way an outside tester's variants
    did (zoomed crops, exposure, colour casts, blur, text banners), driven by
    the entry's hidden attributes so the simulator's clicks still react to
    what the picture shows: ``scale`` -> a tighter crop, ``brightness`` ->
    exposure, ``colour`` -> a 30% cast of that colour, ``clutter`` -> sharp
    (busy) against blurred (clean), ``text_overlay`` -> a dark banner with
    white text. No head, PCA or fine-tuned, has seen these pictures or the
    simulator's drawings of them: what a head learns here it learns from
    photographs and clicks.
    """
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
    from sklearn.datasets import load_sample_image

    photos = [Image.fromarray(load_sample_image(name)).convert("RGB") for name in PHOTOS]
    size = sim.config.image_size
    band = size // 6
    try:
        font: Any = ImageFont.load_default(size=band // 2)
    except TypeError:  # a Pillow without FreeType sizes
        font = ImageFont.load_default()
    out: dict[str, bytes] = {}
    for entry in sim.catalogue:
        rng = np.random.default_rng([seed, zlib.crc32(entry.item_id.encode())])
        photo = photos[int(rng.integers(len(photos)))]
        w, h = photo.size
        side = min(w, h) * float(rng.uniform(0.45, 0.8))
        cx = float(rng.uniform(side / 2, w - side / 2))
        cy = float(rng.uniform(side / 2, h - side / 2))
        a = entry.attributes
        half = side * (1.0 - 0.55 * float(a["scale"])) / 2
        img = photo.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        img = img.resize((size, size), Image.Resampling.BICUBIC)
        img = ImageEnhance.Brightness(img).enhance(0.35 + 0.9 * float(a["brightness"]))
        img = Image.blend(img, Image.new("RGB", img.size, COLOURS[str(a["colour"])]), 0.3)
        radius = 2.5 * (1.0 - float(a["clutter"]))
        if radius > 0.2:
            img = img.filter(ImageFilter.GaussianBlur(radius))
        if float(a["text_overlay"]) > 0.5:
            draw = ImageDraw.Draw(img)
            draw.rectangle((0, size - band, size, size), fill=(20, 20, 20))
            draw.text(
                (size // 10, size - band + band // 4), BANNER, fill=(255, 255, 255), font=font
            )
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out[entry.image_id] = buf.getvalue()
    return out


def _vector(row: Any) -> Vector:
    return tuple(float(v) for v in row)


# -- the job ----------------------------------------------------------------------------


@dataclass
class Job:
    result: FinetuneResult
    published: bool
    reason: str
    figures: dict[str, Any]


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
    newest = learned[-1].impression.ts
    # the labelled topic then: every learned impression's label (the worker learns
    # an example once its window has closed, so all are there) and the clicks the
    # join has already sent for the next window's impressions (open windows)
    topic = [joined(e, window_s) for e in learned]
    topic += [
        joined(e, window_s) for e in later if e.clicked and e.impression.ts < newest + window_s
    ]
    memory = PeakRss()
    t0 = time.perf_counter()
    examples = complete(topic, window_s)
    features, rows = backbone_features(
        [(i, world.pngs[i]) for i in sorted({e.image_id for e in examples})]
    )
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


# -- the stream after the job ---------------------------------------------------------------


@dataclass
class Arm:
    """How one configuration did on the traffic after the fine-tuning point."""

    served: Tally
    final: Tally  # the final champion's own progressive scores
    champion: Learner
    champion_version: str
    lookup: EmbeddingLookup  # the final champion's embeddings
    decision: dict[str, Any] | None = None


def alone(
    learner: Learner, rest: Sequence[OfflineExample], lookup: EmbeddingLookup, version: str
) -> Arm:
    """The rest of the stream through the worker's reorder buffer, no challenger."""
    start = Tally.of(learner)
    for e in rest:
        learner.submit(e.labelled(), "", *lookup(e.impression))
    learner.advance("", math.inf)
    t = Tally.of(learner) - start
    return Arm(t, t, learner, version, lookup)


def duel(
    champion: Learner,
    rest: Sequence[OfflineExample],
    world: World,
    challenger: str,
    calibration: int = CALIBRATION,
) -> Arm:
    """The rest of the stream through an :class:`EncoderDuel` against ``challenger``."""
    d = EncoderDuel(champion, PCA)
    d.challenge(
        challenger,
        alpha=DEFAULTS.promotion_alpha,
        margin=DEFAULTS.promotion_margin,
        clip=DEFAULTS.promotion_clip,
        calibration=calibration,
        max_examples=DEFAULTS.promotion_max_examples,
        min_examples=min(DEFAULTS.promotion_min_examples, DEFAULTS.promotion_max_examples),
    )
    start = Tally.of(champion)
    served = Tally()
    since = start
    decided_at: int | None = None

    def settle(before: Learner, k: int) -> None:
        nonlocal served, since, decided_at
        if d.decisions and decided_at is None:
            decided_at = k
        if d.champion is not before:  # promoted: the challenger serves from now on
            served = served + (Tally.of(before) - since)
            since = Tally.of(d.champion)

    lookups = {v: world.lookup(v) for v in (PCA, challenger)}
    for k, e in enumerate(rest, 1):
        before = d.champion
        image, title = lookups[d.champion_version or PCA](e.impression)
        if d.challenger_version is not None:
            c_image, c_title = lookups[d.challenger_version](e.impression)
        else:
            c_image = c_title = None
        d.submit(e.labelled(), "", image, title, c_image, c_title)
        settle(before, k)
    before = d.champion
    d.advance("", math.inf)
    settle(before, len(rest))
    served = served + (Tally.of(d.champion) - since)
    if d.decisions:
        record = d.decisions[-1]
        decision = {
            "decision": record["decision"],
            "n": record["n"],
            "at_example": decided_at,
            "decided_at": record.get("decided_at"),
            "advantage": record["mean"],
            "std": record.get("std"),
            "interval": [record["lo"], record["hi"]],
        }
    else:
        status = d.status()["comparison"] or {}
        decision = {
            "decision": "undecided",
            "n": status.get("n"),
            "at_example": None,
            "advantage": status.get("mean"),
            "std": status.get("std"),
            "interval": [status.get("lo"), status.get("hi")],
        }
    version = d.champion_version or PCA
    return Arm(
        served, Tally.of(d.champion) - start, d.champion, version, lookups[version], decision
    )


# -- one seed ---------------------------------------------------------------------------------


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    t_seed = time.perf_counter()
    world = build_world(seed, args.events, args)
    stream = world.stream
    cut = int(args.finetune_at * len(stream))
    learned, rest = stream[:cut], stream[cut:]
    oracle = GroupMetrics()
    for e in rest:
        oracle.update(e.true_p, e.clicked)
    oracle_ne = float(oracle.snapshot()["ne"])
    print(
        f"\nseed {seed}: {len(stream)} impressions, CTR "
        f"{np.mean([e.clicked for e in stream]):.4f}, fine-tuning after {cut} "
        f"({sum(e.clicked for e in learned)} clicks); oracle NE after {oracle_ne:.4f}",
        flush=True,
    )

    # 1. the champion learns the first part, as the worker does
    champion = worker_learner()
    pca = world.lookup(PCA)
    predictions: dict[str, float] = {}
    for e in learned:
        p = champion.predict_then_learn(e.labelled(), *pca(e.impression))
        predictions[e.impression.impression_id] = p

    # 2. the job
    job = finetune_job(world, learned, rest, predictions, seed, args.min_clicks)
    # the new version, embedded as Triton would serve it (same backbone, new head)
    served = world.encoder.with_head(job.result.projection).encode(list(world.pngs.values()))
    if any(served.errors):
        raise RuntimeError(f"catalogue images failed to embed: {served.errors}")
    world.images[FINETUNED] = dict(zip(world.pngs, map(_vector, served.embeddings), strict=True))

    # 3. and 4. the rest of the stream, every way
    requests, rank_seed = args.requests, seed + 1000

    def lift(arm: Arm) -> tuple[float, float]:
        return ranking_lifts(world.sim, arm.champion, requests, rank_seed, arm.lookup)

    arms: dict[str, Arm] = {}
    arms["no_finetune"] = alone(copy.deepcopy(champion), rest, pca, PCA)
    arms["forced"] = duel(copy.deepcopy(champion), rest, world, FINETUNED, args.calibration)
    arms["loop"] = arms["forced"] if job.published else arms["no_finetune"]
    truth = worker_learner()
    truth_lookup = lookup_from(true_attributes(world.sim), None)
    for e in learned:
        truth.predict_then_learn(e.labelled(), *truth_lookup(e.impression))
    arms["true_attributes"] = alone(truth, rest, truth_lookup, "true attributes")
    controls = {
        c: duel(copy.deepcopy(champion), rest, world, c, args.calibration)
        for c in (*CONTROLS, POSITIVE)
    }
    arms[POSITIVE] = controls[POSITIVE]

    ranked = {
        name: lift(arms[name]) for name in ("no_finetune", "forced", "true_attributes", POSITIVE)
    }
    lifts = {name: value for name, (value, _) in ranked.items()}
    lifts["loop"] = lifts["forced"] if job.published else lifts["no_finetune"]
    oracle_lift = ranked["no_finetune"][1]

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
        "arms": {name: figures(name, arm) for name, arm in arms.items()},
        "controls": {name: figures(name, arm) for name, arm in controls.items()},
        "job": job.figures,
        "seconds": time.perf_counter() - t_seed,
    }
    print_seed(result)
    return result


# -- printing ------------------------------------------------------------------------------------


ROWS = (
    ("no fine-tuning (PCA head)", "no_finetune"),
    ("loop (gate, then duel)", "loop"),
    ("fine-tuned, duel forced", "forced"),
    ("true attributes (ceiling)", "true_attributes"),
    ("attributes head, dueled", POSITIVE),
)


def _decision(d: dict[str, Any] | None) -> str:
    if d is None:
        return ""
    at = f" at pair {d['decided_at']}" if d.get("decided_at") is not None else ""
    return f"{d['decision']} (n={d['n']}{at})"


def print_seed(r: dict[str, Any]) -> None:
    job = r["job"]
    hold = job["holdout"]
    print(
        f"{'after the fine-tuning point':<28} {'NE':>7} {'gap':>7} {'lift':>7} "
        f"{'of oracle':>9}  duel"
    )
    for label, key in ROWS:
        a = r["arms"][key]
        print(
            f"{label:<28} {a['ne']:>7.4f} {a['ne_gap']:>+7.4f} {a['lift']:>7.3f} "
            f"{a['lift_share']:>9.0%}  {_decision(a.get('duel'))}"
        )
    print(f"{'oracle':<28} {r['oracle_ne_after']:>7.4f} {'':>7} {r['oracle_lift']:>7.3f}")
    print(
        f"job: {'PUBLISHED' if job['published'] else 'refused'}; {job['examples']} examples, "
        f"{job['clicks']} clicks, {job['images']} images, {job['groups']} groups; held-out gain "
        f"{hold['improvement']:+.5f} +- {hold['improvement_se']:.5f} nats over "
        f"{hold['reference']} (best epoch {job['best_epoch']}); "
        f"{job['seconds']['total']:.1f}s ({job['seconds_per_10k']:.1f}s per 10k), peak RSS "
        f"{job['peak_rss_bytes'] / 2**20:.0f} MiB (+{job['peak_rss_increase_bytes'] / 2**20:.0f})"
    )
    print(f"     {job['reason']}")
    print(
        "controls: "
        + "; ".join(
            f"{name} {_decision(c['duel'])}, NE {c['ne']:.4f}" for name, c in r["controls"].items()
        )
    )


def summarise(results: Sequence[dict[str, Any]], visual_taste: float) -> dict[str, Any]:
    def mean(f: Callable[[dict[str, Any]], float]) -> float:
        return statistics.fmean(f(r) for r in results)

    arms = {
        key: {
            figure: statistics.fmean(r["arms"][key][figure] for r in results)
            for figure in ("ne_gap", "lift_share")
        }
        for _, key in ROWS
    }

    def decisions(name: str) -> list[str]:
        return [r["controls"][name]["duel"]["decision"] for r in results]

    pca, loop, truth = (arms[k]["lift_share"] for k in ("no_finetune", "loop", "true_attributes"))
    closed = (loop - pca) / (truth - pca) if truth != pca else float("nan")
    return {
        "seeds": [r["seed"] for r in results],
        "visual_taste": visual_taste,
        "mean": arms,
        "published": sum(r["job"]["published"] for r in results),
        "promoted": sum(r["arms"]["forced"]["duel"]["decision"] == "promote" for r in results),
        "promoted_and_published": sum(
            r["job"]["published"] and r["arms"]["forced"]["duel"]["decision"] == "promote"
            for r in results
        ),
        "controls": {name: decisions(name) for name in (*CONTROLS, POSITIVE)},
        "lift_gap_closed": closed,
        "job_seconds_per_10k": mean(lambda r: r["job"]["seconds_per_10k"]),
        "job_peak_rss_bytes": max(r["job"]["peak_rss_bytes"] for r in results),
        "goals": {
            "loop_lift_at_least_true_attributes": loop >= truth,
            "loop_ne_gap_below_0.018": arms["loop"]["ne_gap"] < 0.018,
            "closes_half_the_lift_gap": closed >= 0.5,
            "corrupted_never_promoted": all(
                d != "promote" for n in ("shuffled", "zero") for d in decisions(n)
            ),
            "identical_never_promoted": all(d != "promote" for d in decisions("identical")),
        },
    }


def print_summary(s: dict[str, Any]) -> None:
    n = len(s["seeds"])
    print(f"\nmean over {n} seed(s) {s['seeds']}, visual_taste {s['visual_taste']}:")
    print(f"{'':<28} {'NE gap':>7} {'of oracle lift':>15}")
    for label, key in ROWS:
        a = s["mean"][key]
        print(f"{label:<28} {a['ne_gap']:>+7.4f} {a['lift_share']:>15.1%}")
    print(
        f"job published {s['published']}/{n}; the fine-tuned head was promoted {s['promoted']}/{n} "
        f"(both: {s['promoted_and_published']}); lift gap PCA -> true attributes closed by the "
        f"loop: {s['lift_gap_closed']:.0%}"
    )
    print("controls: " + "; ".join(f"{k} {v}" for k, v in s["controls"].items()))
    print(
        f"job cost: {s['job_seconds_per_10k']:.1f}s per 10k examples, peak RSS "
        f"{s['job_peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    print("goals: " + ", ".join(f"{k}={v}" for k, v in s["goals"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    demo = DemoConfig()
    parser.add_argument("--seeds", type=int, nargs="+", default=[demo.seed])
    parser.add_argument("--events", type=int, default=demo.events)
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
