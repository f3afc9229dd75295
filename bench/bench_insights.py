"""Are the insights right? Drivers against the simulator's hidden tastes, OPE against its truth.

Two checks of issue 22, each against ground truth no production system has:

1. **Drivers** (:mod:`insights_bench.drivers`): per seed (7-12 by default), a
   catalogue world's traffic is counted per (image, segment), and
   :func:`online_ctr.insights.estimate_drivers` reports each attribute's
   effect per segment group. Per taste group and hidden taste, the reported
   effects are compared with the simulator's hidden weights (Spearman rho;
   goal at least 0.7 on every seed), and decoy attributes no audience reacts
   to are the true nulls: the share of significant effects that are nulls is
   the false discovery rate (goal: at most the nominal q, 5%).
2. **Off-policy evaluation** (:mod:`insights_bench.ope`): 50 seeded runs with
   a uniform logging policy and logged propensities (and 20 Thompson-logged
   runs reported beside them); IPS, SNIPS and doubly robust estimates of
   other policies' CTR against the true value (``Simulator.policy_value``).
   Goals: the truth inside the 95% interval on at least 90% of runs, and
   DR's error below IPS's.

Prints a row per seed and per estimator and the time each part took; the
last stdout line is one JSON object with ``drivers_spearman_mean``,
``drivers_spearman_min``, ``false_discovery_rate``, ``ope_coverage`` and
``dr_error_over_ips_error`` (and the rest of both parts' figures).

    python bench/bench_insights.py                # both parts, seeds 7-12, 50 OPE runs
    python bench/bench_insights.py --measured     # drivers on attributes measured from pixels
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from insights_bench import drivers, ope


def _drivers(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    out = drivers.run(seeds, impressions=args.impressions, q=args.q, measured=args.measured)
    print(
        f"drivers: {args.impressions:,} impressions per seed, q {args.q}, "
        f"{'measured' if args.measured else 'simulator'} attributes"
    )
    print(f"{'seed':>5} {'spearman':>9} {'flagged':>8} {'false':>6} {'fdr':>6} {'power':>6}")
    for row in out["rows"]:
        print(
            f"{row['seed']:>5} {row['spearman']:>9.3f} {row['significant']:>8} "
            f"{row['false_discoveries']:>6} {row['fdr']:>6.3f} {row['power']:>6.3f}"
        )
    seconds = time.perf_counter() - t0
    print(
        f"drivers: spearman mean {out['drivers_spearman_mean']:.3f}, "
        f"min {out['drivers_spearman_min']:.3f} (goal >= 0.7 on every seed); "
        f"false discovery rate {out['false_discovery_rate']:.3f} (goal <= {args.q}); "
        f"{seconds:.0f} s"
    )
    return {**out, "drivers_seconds": round(seconds, 1)}


def _ope(args: argparse.Namespace) -> dict[str, Any]:
    out = ope.run(args.ope_runs, n_impressions=args.ope_impressions, workers=args.workers)
    print(f"off-policy evaluation: {out['n_runs']} runs of {out['n_impressions']:,} impressions")
    print(f"{'target':>12} {'estimator':>9} {'coverage':>9} {'mean |err|':>11} {'runs':>5}")
    for target, fig in out["by_target"].items():
        if not fig["runs"]:
            print(f"{target:>12} refused on every run")
            continue
        for name, coverage in fig["coverage"].items():
            print(
                f"{target:>12} {name:>9} {coverage:>9.2f} "
                f"{fig['mean_abs_error'][name]:>11.5f} {fig['runs']:>5}"
            )
    print(
        f"ope: DR coverage {out['ope_coverage']:.2f} (goal >= 0.9); "
        f"DR error / IPS error {out['dr_error_over_ips_error']:.3f} (goal < 1), "
        f"DRos {out['dr_variants_error_over_ips_error']['dros']:.3f}; "
        f"{out['seconds']:.0f} s"
    )
    return {k: v for k, v in out.items() if k != "runs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-seed", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=6, help="drivers: seeds from --first-seed")
    parser.add_argument("--impressions", type=int, default=drivers.IMPRESSIONS_PER_SEED)
    parser.add_argument("--q", type=float, default=0.05, help="Benjamini-Hochberg level")
    parser.add_argument("--measured", action="store_true", help="attributes from pixels")
    parser.add_argument("--ope-runs", type=int, default=50)
    parser.add_argument("--ope-impressions", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2, help="processes for the OPE runs")
    parser.add_argument("--only", choices=("drivers", "ope"), help="run one part")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    if args.only in (None, "drivers"):
        summary.update(_drivers(args))
    if args.only in (None, "ope"):
        summary.update(_ope(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
