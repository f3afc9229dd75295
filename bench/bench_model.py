"""Our online models vs Vowpal Wabbit vs an offline LightGBM, on one stream.

Every model sees the same examples in impression-time order (what the
learner's reorder buffer produces) with the same features
(:func:`online_ctr.features.featurize`, computed once):

* ours: every registered River model, progressive validation (predict, then
  learn), unweighted as the :class:`~online_ctr.learner.Learner` does by
  default; plus the default model with FNW weights, to show what they do to
  calibration when most positives have no fake negative before them;
* Vowpal Wabbit: ``--loss_function logistic``, the same features in VW text
  format, progressive (predict, then learn);
* LightGBM: trained offline on the first 80%, scored on the last 20%; the
  online models are scored on that last 20% too (progressively) to compare.

The stream comes from ``simulator`` (labels built here from its messages:
an impression is positive if a click message for it appears; duplicates and
malformed messages are ignored) or, if that package cannot be imported, from
a small synthetic generator below. Both know the true click probabilities,
so the oracle row gives the floor. With the simulator, one more row feeds the
catalogue's hidden image attributes through the embedding slot: the most an
image encoder could add. The last line times the real serving path,
:meth:`Learner.process` (featurize + predict + metrics + learn).

Run: ``.venv/bin/python bench/bench_model.py [--events 50000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from online_ctr.features import featurize
from online_ctr.fnw import fnw_weight
from online_ctr.learner import Learner
from online_ctr.metrics import GroupMetrics
from online_ctr.models.registry import DEFAULT_MODEL, MODELS, make_model
from schemas import Impression, LabelledImpression

Features = dict[str, float]
Step = Callable[[Features, bool], float]


@dataclass(frozen=True)
class Example:
    """One labelled impression with its ground truth."""

    impression: Impression
    clicked: bool
    true_p: float
    #: hidden image attributes (simulator only): stand-in for an image embedding
    image: tuple[float, ...] | None = None


# -- the stream -------------------------------------------------------------------


def simulator_stream(n: int, seed: int) -> list[Example] | None:
    """Labelled impressions from the simulator, or ``None`` if it is not importable."""
    try:
        from simulator import SimConfig, Simulator
        from simulator.labelled import labelled_stream
    except ImportError:
        return None
    from bertctr.judge import true_attributes

    sim = Simulator(SimConfig(seed=seed))
    attributes = true_attributes(sim)
    return [
        Example(e.impression, e.clicked, e.true_p, attributes[e.impression.image_id])
        for e in labelled_stream(sim, n)
    ]


def synthetic_stream(n: int, seed: int) -> list[Example]:
    """A small stand-in: segment, item, segment x variant and position effects."""
    rnd = random.Random(seed)
    segments = [
        {"device": d, "geo": g, "taste": t}
        for d in ("mobile", "desktop")
        for g in ("US", "DE")
        for t in ("t0", "t1", "t2")
    ]
    items = [f"item-{i}" for i in range(30)]
    variants = ("v0", "v1", "v2")
    quality = {i: rnd.gauss(0, 0.3) for i in items}
    taste = {
        (t, i, v): rnd.gauss(0, 0.4) for t in ("t0", "t1", "t2") for i in items for v in variants
    }
    out = []
    for k in range(n):
        seg, item, var = rnd.choice(segments), rnd.choice(items), rnd.choice(variants)
        position = min(int(rnd.expovariate(0.5)), 20)
        logit = -3.5 + quality[item] + taste[(seg["taste"], item, var)] - math.log1p(0.3 * position)
        p = 1.0 / (1.0 + math.exp(-logit))
        imp = Impression(
            event_id=f"e{k}",
            impression_id=f"i{k}",
            ts=1_767_225_600.0 + k * 0.02,
            item_id=item,
            image_id=f"{item}-{var}",
            variant=var,
            title=f"{item} {var}",
            position=position,
            segment=seg,
        )
        out.append(Example(imp, rnd.random() < p, p))
    return out


# -- the contenders ---------------------------------------------------------------


def river_step(name: str, fnw: bool = False) -> Step:
    model = make_model(name)

    def step(x: Features, y: bool) -> float:
        p = float(model.predict_proba_one(x)[True])
        model.learn_one(x, y, w=fnw_weight(p, y) if fnw else 1.0)
        return p

    return step


def _vw_name(name: str) -> str:
    return name.replace(" ", "_").replace(":", ";").replace("|", "!")


def vw_step(args: str) -> Step:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--loss_function logistic --link logistic --quiet {args}")

    def step(x: Features, y: bool) -> float:
        text = "| " + " ".join(f"{_vw_name(k)}:{v:.6g}" for k, v in x.items())
        p = float(vw.predict(text))
        vw.learn(f"{1 if y else -1} {text}")
        return p

    return step


#: VW's adaptive normalised SGD at its default and a tuned rate, and VW's own FTRL
VW_CONFIGS = {
    "vw (defaults: adaptive, lr 0.5)": "",
    "vw -l 0.1 --l2 1e-7": "-l 0.1 --l2 1e-7",
    "vw --ftrl (alpha 0.07, beta 1)": "--ftrl --ftrl_alpha 0.07 --ftrl_beta 1 --l1 1e-6",
}


def run_online(step: Step, xs: Sequence[Features], ys: Sequence[bool]) -> tuple[list[float], float]:
    """Predictions made before learning each example, and events per second."""
    t0 = time.perf_counter()
    ps = [step(x, y) for x, y in zip(xs, ys, strict=True)]
    return ps, len(xs) / (time.perf_counter() - t0)


def lightgbm_offline(
    xs: Sequence[Features], ys: Sequence[bool], split: int
) -> tuple[list[float], float]:
    """Train on ``[:split]``, predict ``[split:]``; rate = training + scoring events/s."""
    import lightgbm
    from scipy.sparse import csr_matrix

    index: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, x in enumerate(xs):
        for k, v in x.items():
            rows.append(i)
            cols.append(index.setdefault(k, len(index)))
            vals.append(v)
    shape = (len(xs), len(index))
    matrix = csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float32)
    labels = np.asarray(ys, dtype=np.float32)
    t0 = time.perf_counter()
    model = lightgbm.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=100,
        reg_lambda=5.0,
        colsample_bytree=0.5,
        verbose=-1,
        n_jobs=2,
    )
    model.fit(matrix[:split], labels[:split])
    ps = np.asarray(model.predict_proba(matrix[split:]))[:, 1]
    return [float(p) for p in ps], len(xs) / (time.perf_counter() - t0)


def learner_rate(stream: Sequence[Example]) -> float:
    """Events/s of the serving path: ``Learner.process`` on labelled impressions."""
    labelled = [
        LabelledImpression.from_impression(
            e.impression, clicked=e.clicked, click_delay_s=None, late=False, labelled_at=0.0
        )
        for e in stream
    ]
    learner = Learner(make_model())
    t0 = time.perf_counter()
    for example in labelled:
        learner.predict_then_learn(example)
    return len(labelled) / (time.perf_counter() - t0)


# -- the table ----------------------------------------------------------------------


def summarise(ps: Sequence[float], ys: Sequence[bool]) -> dict[str, Any]:
    group = GroupMetrics()
    for p, y in zip(ps, ys, strict=True):
        group.update(p, y)
    return group.snapshot()


class Table:
    """Prints one row per contender: progressive over all, and over the last 20%."""

    def __init__(self, ys: Sequence[bool], split: int) -> None:
        self.ys, self.split = ys, split
        self.ne_last: dict[str, float] = {}
        self.ne_all: dict[str, float] = {}
        print(
            f"{'model':<40} {'logloss':>8} {'NE':>7} {'AUC':>6} {'calib':>6} | "
            f"{'logloss':>8} {'NE':>7} {'AUC':>6} | {'events/s':>9}"
        )
        print(f"{'':<40} {'progressive, all events':^30} | {'last 20%':^24} |")

    def row(
        self, name: str, ps: Sequence[float] | None, ps_last: Sequence[float], rate: float
    ) -> None:
        tail = summarise(ps_last, self.ys[self.split :])
        self.ne_last[name] = tail["ne"]
        if ps is None:
            head = f"{'-':>8} {'-':>7} {'-':>6} {'-':>6}"
        else:
            full = summarise(ps, self.ys)
            self.ne_all[name] = full["ne"]
            head = (
                f"{full['logloss']:>8.5f} {full['ne']:>7.4f} {full['auc']:>6.4f} "
                f"{full['calibration']:>6.3f}"
            )
        speed = "-" if math.isinf(rate) else f"{rate:.0f}"
        print(
            f"{name:<40} {head} | {tail['logloss']:>8.5f} {tail['ne']:>7.4f} "
            f"{tail['auc']:>6.4f} | {speed:>9}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-lightgbm", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    stream = simulator_stream(args.events, args.seed)
    source = "simulator"
    if stream is None:
        stream, source = synthetic_stream(args.events, args.seed), "synthetic fallback"
    t1 = time.perf_counter()
    xs = [featurize(e.impression) for e in stream]
    featurize_rate = len(xs) / (time.perf_counter() - t1)
    ys = [e.clicked for e in stream]
    split = int(0.8 * len(stream))
    print(
        f"{len(stream)} impressions from the {source} (seed {args.seed}, made in "
        f"{t1 - t0:.1f} s), CTR {np.mean(ys):.4f}, "
        f"{np.mean([len(x) for x in xs]):.1f} features/event, featurize {featurize_rate:.0f}/s"
    )
    table = Table(ys, split)
    oracle = [e.true_p for e in stream]
    table.row("oracle (true p)", oracle, oracle[split:], math.inf)

    default = f"ours: {DEFAULT_MODEL} (default)"
    for name in sorted(set(MODELS) - {"default"}):
        ps, rate = run_online(river_step(name), xs, ys)
        label = default if name == DEFAULT_MODEL else f"ours: {name}"
        table.row(label, ps, ps[split:], rate)
    ps, rate = run_online(river_step(DEFAULT_MODEL, fnw=True), xs, ys)
    table.row(f"ours: {DEFAULT_MODEL} + FNW weights", ps, ps[split:], rate)
    if stream[0].image is not None:
        xs_img = [featurize(e.impression, image_embedding=e.image) for e in stream]
        ps, rate = run_online(river_step(DEFAULT_MODEL), xs_img, ys)
        table.row(f"ours: {DEFAULT_MODEL} + true image attrs", ps, ps[split:], rate)

    for label, vw_args in VW_CONFIGS.items():
        ps, rate = run_online(vw_step(f"-b 20 {vw_args}"), xs, ys)
        table.row(label, ps, ps[split:], rate)
    if not args.no_lightgbm:
        ps_lgb, rate = lightgbm_offline(xs, ys, split)
        table.row("lightgbm offline, train 80% / test 20%", None, ps_lgb, rate)

    gap_all = table.ne_all[default] - table.ne_all["oracle (true p)"]
    gap_last = table.ne_last[default] - table.ne_last["oracle (true p)"]
    print(f"\ndefault model NE - oracle NE: {gap_all:+.4f} (all), {gap_last:+.4f} (last 20%)")
    rate = learner_rate(stream)
    print(f"Learner.process end to end (featurize + predict + metrics + learn): {rate:.0f}/s")


if __name__ == "__main__":
    main()
