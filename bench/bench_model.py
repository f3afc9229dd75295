"""Our online model vs Vowpal Wabbit vs an offline LightGBM, on one simulated stream.

Every model sees the same examples, in impression-time order (what the
learner's reorder buffer produces), with the same features
(:func:`online_ctr.features.featurize`):

* ours: the registered River models, progressive validation (predict, then learn);
* Vowpal Wabbit: logistic loss, the same features in VW text format, progressive;
* LightGBM: trained offline on the first 80%, scored on the last 20%; the
  online models are also scored on that last 20% (progressively) to compare.

The oracle (the simulator's true probabilities) gives the floor. Prints log
loss, NE, AUC and events/s (learning + prediction, features precomputed).

Run: ``.venv/bin/python bench/bench_model.py [--events 50000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from online_ctr.features import featurize
from online_ctr.learner import fnw_weight
from online_ctr.metrics import GroupMetrics
from online_ctr.models import MODELS, make_model
from schemas import Impression
from simulator import SimConfig, Simulator

Example = tuple[dict[str, float], bool, float]  # features, label, true p


def examples(n: int, seed: int) -> list[Example]:
    sim = Simulator(SimConfig(seed=seed, impressions_per_s=5.0))  # as in the demo
    msgs = list(sim.messages(n))
    clicked = {
        json.loads(m.value)["impression_id"]
        for m in msgs
        if m.topic == "clicks" and m.kind == "click"
    }
    out = []
    for m in msgs:
        if m.topic == "impressions" and m.kind == "impression":
            imp = Impression.model_validate_json(m.value)
            out.append(
                (featurize(imp), imp.impression_id in clicked, sim.true_p[imp.impression_id])
            )
    return out


def summarise(ps: Sequence[float], ys: Sequence[bool]) -> dict[str, Any]:
    g = GroupMetrics()
    for p, y in zip(ps, ys, strict=True):
        g.update(p, y)
    return g.snapshot()


def run_online(
    predict_learn: Callable[[dict[str, float], bool], float], data: list[Example]
) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    ps = [predict_learn(x, y) for x, y, _ in data]
    return ps, len(data) / (time.perf_counter() - t0)


def river_model(name: str) -> Callable[[dict[str, float], bool], float]:
    model = make_model(name)

    def step(x: dict[str, float], y: bool) -> float:
        p = float(model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, y, w=fnw_weight(p, y))
        return p

    return step


def vw_model(args: str) -> Callable[[dict[str, float], bool], float]:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--loss_function logistic --link logistic --quiet -b 20 {args}")

    def line(x: dict[str, float]) -> str:
        feats = " ".join(
            f"{k.replace(' ', '_').replace(':', ';').replace('|', '!')}:{v:.6g}"
            for k, v in x.items()
        )
        return f"| {feats}"

    def step(x: dict[str, float], y: bool) -> float:
        text = line(x)
        p = float(vw.predict(text))
        vw.learn(f"{1 if y else -1} {text}")
        return p

    return step


def lightgbm_offline(data: list[Example], split: int) -> tuple[list[float], float]:
    import lightgbm
    from scipy.sparse import csr_matrix

    index: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, (x, _, _) in enumerate(data):
        for k, v in x.items():
            j = index.setdefault(k, len(index))
            rows.append(i)
            cols.append(j)
            vals.append(v)
    matrix = csr_matrix((vals, (rows, cols)), shape=(len(data), len(index)), dtype=np.float32)
    y = np.array([lab for _, lab, _ in data], dtype=np.float32)
    t0 = time.perf_counter()
    model = lightgbm.LGBMClassifier(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        reg_lambda=1.0,
        verbose=-1,
    )
    model.fit(matrix[:split], y[:split])
    ps = np.asarray(model.predict_proba(matrix[split:]))[:, 1]
    return [float(p) for p in ps], (len(data)) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = examples(args.events, args.seed)
    ys = [y for _, y, _ in data]
    split = int(0.8 * len(data))
    print(
        f"{len(data)} impressions, CTR {np.mean(ys):.4f}, seed {args.seed}; "
        f"'all' = progressive over the stream, 'last20' = last 20% only"
    )
    print(
        f"{'model':<26} {'logloss all':>11} {'NE all':>7} {'AUC all':>8} "
        f"{'logloss last20':>14} {'NE last20':>9} {'events/s':>9}"
    )

    def report(
        name: str, ps: Sequence[float] | None, ps_last: Sequence[float], rate: float
    ) -> None:
        tail = summarise(ps_last, ys[split:])
        if ps is not None:
            full = summarise(ps, ys)
            head = f"{full['logloss']:>11.5f} {full['ne']:>7.4f} {full['auc']:>8.4f}"
        else:
            head = f"{'-':>11} {'-':>7} {'-':>8}"
        print(
            f"{name:<26} {head} {tail['logloss']:>14.5f} {tail['ne']:>9.4f} {rate:>9.0f}",
            flush=True,
        )

    oracle = [p for _, _, p in data]
    report("oracle (true p)", oracle, oracle[split:], math.inf)
    for name in sorted(set(MODELS) - {"default"}):
        ps, rate = run_online(river_model(name), data)
        report(f"ours: river {name}", ps, ps[split:], rate)
    for vw_args in ("", "-l 0.1 --l2 1e-7"):
        ps, rate = run_online(vw_model(vw_args), data)
        report(f"vw {vw_args or '(defaults)'}", ps, ps[split:], rate)
    ps_lgb, rate = lightgbm_offline(data, split)
    report("lightgbm offline 80/20", None, ps_lgb, rate)


if __name__ == "__main__":
    main()
